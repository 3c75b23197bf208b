"""The golden device: the command layer (:mod:`mmfree.host.commands`) in-process, computing with the golden model.

It holds a weight image and a program memory of 64-bit words that only WRITE fills, as the gateware's memories
are, and runs what they hold with :class:`~mmfree.host.machine.Machine` (bit-exact with
:class:`~mmfree.host.golden.GoldenModel`); it samples with :class:`~mmfree.host.gumbel.GumbelSampler` (greedy: the
first maximum of the head's accumulators, as ``numpy.argmax``). It has no clock: INFO reports 0 Hz and a zero
gateware hash, TOKEN, DONE and STATS report 0 cycles.

A streamed run (GENERATE's STREAM flag) is started by its GENERATE or NEXT and owes CONFIG's ``pass_words`` words;
STREAM requests hand them over, and the run is *settled* — computed from exactly the words received — by the next
command that needs its result (any but INFO, STATS and STREAM), which fails STREAM_SHORT while words are still owed.
RESET abandons it. The gateware runs the same protocol with the words flowing into the core as they arrive.

:meth:`GoldenDevice.handle` is a :class:`~mmfree.host.link.DeviceModel` handler, so that requests and responses go
through real frames; ``golden://`` URLs (:func:`mmfree.host.transport.open_transport`) wire it up that way.
"""

import numpy as np

from .commands import (VERSION, Checksum, Command, CommandError, DeviceStats, Done, ErrorCode, ErrorReport, Info,
                       Readback, Region, Target, Token, decode_request, digest, region_words, words_instructions)
from .compiler import CORES, Program
from .golden import Formats
from .gumbel import GumbelSampler
from .isa import Opcode, Slot, decode
from .machine import Machine
from .protocol import REPLY_BIT

__all__ = ["GoldenDevice"]

#: NOT_LOADED's bit for each region never written
_LOADED_BITS = {Region.IMAGE: 1, Region.PROGRAM: 2}


class GoldenDevice:
    """A device implementing the command layer with the golden model.

    Parameters
    ----------
    core : mmfree.host.compiler.CoreParams
        The core it reports and whose memory sizes it has (default: the iCEBreaker's). It computes in the frozen
        formats, :class:`~mmfree.host.golden.Formats` ``()``.

    Attributes
    ----------
    memory : dict
        :class:`~mmfree.host.commands.Region` → its words (uint64 array, zero at power-up).
    tokens_run, tokens_generated : int
        The STATS counters.
    """

    def __init__(self, core=CORES["icebreaker"]):
        self.core = core
        self.memory = {region: np.zeros(region_words(core, region), dtype=np.uint64) for region in Region}
        self.tokens_run = self.tokens_generated = 0
        self._written = set()
        self._machine = None
        self._stale = True  # the program memory changed since the machine was built
        self._vocabulary = 0
        self._sampler = GumbelSampler()
        self._inv_temperature = None
        self._remaining = None  # tokens left to generate; None: no generation in progress
        self._generated = 0
        self._pass_words = 0    # CONFIG's words streamed per run
        self._pending = None    # a streamed run not yet settled: (token, received words)
        self._owed = 0          # words it still needs
        self._streamed = False  # the generation in progress is streamed

    def handle(self, type, payload):
        """Answer one request: ``(response type, payload)`` (a :class:`~mmfree.host.link.DeviceModel` handler).
        A failing command is answered ERROR; nothing else changed."""
        try:
            if not self.core.weight_stream and type == Command.STREAM:
                raise CommandError(ErrorCode.UNKNOWN_COMMAND, type, type)
            request = decode_request(type, payload)
            if request.TYPE == Command.GENERATE and request.stream and not self.core.weight_stream:
                raise CommandError(ErrorCode.BAD_VALUE, type, 0, payload[0])
            if self._pending is not None and type not in (Command.INFO, Command.STATS, Command.STREAM,
                                                          Command.RESET):
                self._settle()
            reply = getattr(self, f"_{Command(type).name.lower()}")(request)
        except CommandError as error:
            return ErrorReport.TYPE, ErrorReport(type, error.code, error.value, error.limit).encode()
        if reply is None:
            return type | REPLY_BIT, b""
        return reply.TYPE, reply.encode()

    # -- the program -------------------------------------------------------------------------------------------

    def _loaded(self):
        """The machine running what the memories hold (rebuilt after the program changed, keeping its state)."""
        missing = sum(bit for region, bit in _LOADED_BITS.items() if region not in self._written)
        if missing:
            raise CommandError(ErrorCode.NOT_LOADED, value=missing)
        if self._stale:
            instructions, vocabulary = [], 0
            try:
                for word in words_instructions(self.memory[Region.PROGRAM]):
                    instructions.append(word)
                    opcode, fields = decode(word)
                    if opcode is Opcode.EMBED:
                        vocabulary = fields["tokens"]
                    if opcode is Opcode.END:
                        break
                else:
                    raise ValueError("no END")
                machine = Machine(Program(instructions, self.memory[Region.IMAGE], self.core, Formats()))
            except ValueError:
                raise CommandError(ErrorCode.BAD_PROGRAM) from None
            if not vocabulary:
                raise CommandError(ErrorCode.BAD_PROGRAM)
            self._pass_words = decode(instructions[0])[1].get("pass_words", 0)
            if self._machine is not None:
                machine.state, machine.slots, machine.logits = \
                    self._machine.state, self._machine.slots, self._machine.logits
            self._machine, self._vocabulary, self._stale = machine, vocabulary, False
        return self._machine

    def _run(self, machine, token, stream=()):
        try:
            machine.run(token, np.asarray(stream, dtype=np.uint64))
        except (ValueError, KeyError, IndexError):
            raise CommandError(ErrorCode.BAD_PROGRAM) from None
        self.tokens_run += 1

    def _start(self, token):
        """Start the streamed run of ``token``: it owes ``pass_words`` words."""
        self._pending, self._owed = (token, []), self._pass_words

    def _settle(self):
        """Compute the pending streamed run from the words it received (STREAM_SHORT while it owes some)."""
        if self._owed:
            raise CommandError(ErrorCode.STREAM_SHORT, value=self._owed)
        token, words = self._pending
        self._pending = None
        self._run(self._machine, token, words)

    # -- commands ----------------------------------------------------------------------------------------------

    def _info(self, request):
        return Info(VERSION, self.core, clock_hz=0)

    def _write(self, request):
        words = self.memory[request.region]
        end = request.offset + len(request.words)
        if end > len(words):
            raise CommandError(ErrorCode.OUT_OF_RANGE, Command.WRITE, end - 1, len(words))
        words[request.offset:end] = request.words
        self._written.add(request.region)
        self._stale |= request.region is Region.PROGRAM
        self._remaining = None

    def _digest(self, request):
        words = self.memory[request.region]
        if request.count > len(words):
            raise CommandError(ErrorCode.OUT_OF_RANGE, Command.DIGEST, request.count - 1, len(words))
        return Checksum(digest(words[:request.count]))

    def _reset(self, request):
        if self._machine is not None:
            self._machine.reset()
        self._remaining, self._pending, self._owed = None, None, 0

    def _stream(self, request):
        if self._pending is None or len(request.words) > self._owed:
            raise CommandError(ErrorCode.OUT_OF_RANGE, Command.STREAM, len(request.words), self._owed)
        self._pending[1].extend(request.words)
        self._owed -= len(request.words)

    def _read(self, request):
        machine = self._loaded()
        scale = None
        if request.target is Target.SLOT:
            if request.index >= len(Slot):
                raise CommandError(ErrorCode.OUT_OF_RANGE, Command.READ, request.index, len(Slot))
            if Slot(request.index) not in machine.slots:
                raise CommandError(ErrorCode.NO_DATA, Command.READ)
            values, units = machine.slots[Slot(request.index)]
            scale = units[0] if units else None
        elif request.target is Target.STATE:
            if not machine.state:
                raise CommandError(ErrorCode.NO_DATA, Command.READ)
            if request.index not in machine.state:
                raise CommandError(ErrorCode.OUT_OF_RANGE, Command.READ, request.index, len(machine.state))
            values = machine.state[request.index]
        else:
            if machine.logits is None:
                raise CommandError(ErrorCode.NO_DATA, Command.READ)
            values, scales = machine.logits
            scale = scales[0]
        values = np.asarray(values).reshape(-1)
        if request.offset >= len(values):
            raise CommandError(ErrorCode.OUT_OF_RANGE, Command.READ, request.offset, len(values))
        return Readback(len(values), scale, values[request.offset:request.offset + request.count].tolist())

    def _stats(self, request):
        return DeviceStats(self.tokens_run, self.tokens_generated, cycles=0)

    def _generate(self, request):
        machine = self._loaded()
        for token in request.prompt:
            if token >= self._vocabulary:
                raise CommandError(ErrorCode.BAD_TOKEN, Command.GENERATE, token, self._vocabulary)
        if not request.prompt and (request.reset_state or machine.logits is None):
            raise CommandError(ErrorCode.NO_DATA, Command.GENERATE)
        self._remaining = None
        if request.reset_state:
            machine.reset()
        for token in request.prompt:
            if request.stream:
                self._start(token)
            else:
                self._run(machine, token)
        self._sampler.reseed(request.seed)
        self._inv_temperature = request.inv_temperature
        self._remaining, self._generated, self._streamed = request.max_new_tokens, 0, request.stream

    def _next(self, request):
        if self._remaining is None:
            raise CommandError(ErrorCode.IDLE, Command.NEXT)
        if not self._remaining:
            self._remaining = None
            return Done(self._generated, cycles=0)
        machine = self._machine
        acc, scales = machine.logits
        token = self._sampler.sample(acc[0], scales[0], self._inv_temperature)
        if self._streamed:
            self._start(token)
        else:
            self._run(machine, token)
        self._remaining -= 1
        self._generated += 1
        self.tokens_generated += 1
        return Token(token, cycles=0)
