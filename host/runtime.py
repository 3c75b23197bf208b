"""The runtime: a device behind a URL as a Python object that loads models and streams generated tokens
(``docs/runtime.md``).

::

    with Accelerator.open("golden://") as acc:
        acc.load(resolve_model("demo"))
        for token in acc.generate(prompt_ids, 200, temperature=0.8, seed=1):
            ...

:class:`Accelerator` speaks the command layer (:mod:`mmfree.host.commands`) through a link session
(:class:`~mmfree.host.link.Link`) over any transport (:func:`~mmfree.host.transport.open_transport`). Sampling
happens on the device, bit-exact with :class:`~mmfree.host.golden.GoldenModel` and
:class:`~mmfree.host.gumbel.GumbelSampler`; only token ids cross the link unless asked for (:meth:`Accelerator.read`).
"""

import dataclasses
import sys
import time

import numpy as np
from tqdm import tqdm

from .commands import (HASH_BYTES, MAX_READ, VERSION, Command, Digest, Done, GetInfo, GetStats, Generate,
                       Next, Read, Region, Reply, Reset, Stream, Target, Write, decode_reply, digest,
                       instruction_words)
from .compiler import FitError, Program, compile_model
from .golden import Formats
from .gumbel import GumbelSampler
from .link import Link, ResponseLost, VersionMismatch
from .model import Model
from .protocol import CRC_SIZE, HEADER_SIZE
from .transport import REPLY_TIMEOUT, open_transport

__all__ = ["Accelerator", "Stats", "GatewareMismatch", "DigestMismatch"]

#: WRITE requests per pipelined batch (the progress bar moves per batch)
_WRITE_BATCH = 64


class GatewareMismatch(ValueError):
    """The device runs other gateware than the caller expects (its INFO hash differs)."""


class DigestMismatch(RuntimeError):
    """After a load, the device's DIGEST of a region differs from the host's CRC of what it wrote."""


@dataclasses.dataclass(frozen=True)
class Stats:
    """What the session's generations cost.

    Attributes
    ----------
    tokens : int
        Generated tokens received (TOKEN responses).
    cycles : int or None
        Device cycles of those tokens (the sum of their TOKEN cycle counts); None when the device has no clock.
    total_cycles : int or None
        Device cycles of the completed generations, prompts included (the sum of their DONE cycle counts); None when
        the device has no clock.
    clock_hz : int
        The device's configured clock (0: none, e.g. the golden device).
    bytes_sent, bytes_received : int
        Bytes on the link since the session opened, loads included.
    wall_s : float
        Host seconds spent waiting for GENERATE and NEXT responses.
    """

    tokens: int
    cycles: object
    total_cycles: object
    clock_hz: int
    bytes_sent: int
    bytes_received: int
    wall_s: float

    @property
    def tokens_per_s(self):
        """Tokens per second at the configured clock (``clock_hz · tokens / cycles``), None when unknown."""
        return self.clock_hz * self.tokens / self.cycles if self.clock_hz and self.cycles else None

    @property
    def wall_s_per_token(self):
        """Host seconds per generated token (link and device), None before the first token."""
        return self.wall_s / self.tokens if self.tokens else None

    def summary(self):
        """One line for people."""
        parts = [f"{self.tokens} tokens"]
        if self.tokens:
            parts.append(f"{1e3 * self.wall_s_per_token:.2f} ms/token wall")
        if self.tokens_per_s is None:
            parts.append("device cycles: n/a (no clock)" if not self.clock_hz else "device cycles: n/a")
        else:
            parts.append(f"{self.cycles / self.tokens:,.0f} cycles/token = {self.tokens_per_s:,.1f} tokens/s at "
                         f"{self.clock_hz / 1e6:g} MHz")
        parts.append(f"link: {self.bytes_sent:,} bytes sent, {self.bytes_received:,} received")
        return "; ".join(parts)


class _Counting:
    """A transport that counts the bytes through it."""

    def __init__(self, transport):
        self.transport = transport
        self.sent = self.received = 0

    def write(self, data):
        self.sent += len(data)
        self.transport.write(data)

    def read(self, count, timeout):
        data = self.transport.read(count, timeout)
        self.received += len(data)
        return data

    def close(self):
        self.transport.close()


def _stderr(message):
    print(message, file=sys.stderr)


def _check_uint(name, value, bits):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{name} must lie in 0 … {(1 << bits) - 1}, not {value}")
    return int(value)


class Accelerator:
    """A session with a device: connect (link HELLO, then INFO), load, generate, read back.

    Parameters
    ----------
    transport
        A byte transport (``write``, ``read``, ``close``; :mod:`mmfree.host.transport`); the accelerator owns it
        and closes it in :meth:`close`.
    expected_hash : bytes, str or a collection of them, optional
        The gateware hash the device must report (32 bytes, or 64 hex digits), or the hashes one of which it must
        report (:func:`mmfree.host.build.known_gateware`); :class:`GatewareMismatch` otherwise.
    progress : bool
        Show a progress bar (stderr) for loads that take longer than half a second, and the virtual board's build
        messages.
    timeout, retries
        The link's (:class:`~mmfree.host.link.Link`): seconds to wait for a response before retrying (default: the
        transport's ``reply_timeout``), and how often.

    Attributes
    ----------
    info : mmfree.host.commands.Info
        The device's INFO: command-layer version, core parameters, clock, gateware hash.
    link : mmfree.host.link.Link
    program : mmfree.host.compiler.Program or None
        What the last :meth:`load` put on the device.

    Raises
    ------
    mmfree.host.link.VersionMismatch
        The device's command layer (or link) speaks another version.
    GatewareMismatch
        ``expected_hash`` is given and differs from the device's.
    mmfree.host.link.LinkError
        The device does not answer.
    """

    def __init__(self, transport, *, expected_hash=None, progress=True, timeout=None, retries=5):
        if timeout is None:
            timeout = getattr(transport, "reply_timeout", REPLY_TIMEOUT)
        self._transport = _Counting(transport)
        self.link = Link(self._transport, timeout=timeout, retries=retries)
        self.progress = progress
        self.program = None
        self._generation = 0
        self._tokens = self._cycles = self._total_cycles = 0
        self._wall = 0.0
        self.link.hello()
        frame = self.link.request(GetInfo().encode(), type=Command.INFO)
        version = frame.payload[0] if frame.payload else None
        if frame.type == Reply.INFO and version != VERSION:  # checked first: another version may lay INFO out anew
            raise VersionMismatch(f"the device's command layer is version {version}, this host speaks {VERSION}")
        self.info = decode_reply(Command.INFO, frame.type, frame.payload)
        if expected_hash is not None:
            one = isinstance(expected_hash, (bytes, bytearray, str))
            expected = [_hash_bytes(value) for value in ([expected_hash] if one else expected_hash)]
            if self.info.gateware_hash not in expected:
                raise GatewareMismatch(f"the device runs gateware {self.info.gateware_hash.hex()}, expected "
                                       f"{' or '.join(value.hex() for value in expected) or 'a known one (none)'}: "
                                       "program the board with the matching bitstream")

    @classmethod
    def open(cls, url, *, expected_hash=None, progress=True, timeout=None, retries=5):
        """Open the transport ``url`` names (:func:`~mmfree.host.transport.open_transport`: a serial port,
        ``socket://host:port``, ``sim://<board>``, ``golden://``) and connect; parameters as for the class.

        Use it as a context manager (or call :meth:`close`).
        """
        transport = open_transport(url, progress=_stderr if progress else None)
        try:
            return cls(transport, expected_hash=expected_hash, progress=progress, timeout=timeout, retries=retries)
        except BaseException:
            transport.close()
            raise

    def close(self):
        """Close the transport."""
        self._transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- requests ----------------------------------------------------------------------------------------------

    def call(self, request):
        """Send one command; its decoded response (None for an acknowledgement). CommandError when it failed."""
        frame = self.link.request(request.encode(), type=request.TYPE)
        return decode_reply(request.TYPE, frame.type, frame.payload)

    def send_all(self, requests, idempotent=True):
        """Send commands back to back within the credit; a CommandError if one failed.

        When a response is lost behind later ones (:class:`~mmfree.host.link.ResponseLost`) the link opens a new
        session and, for ``idempotent`` commands (WRITEs), the requests from the lost one on go again; the responses
        that did arrive before it are not seen (DIGEST checks the load). Gives up after ``retries`` losses in a row
        without progress. STREAMs are not idempotent: a lost response among them raises ``ResponseLost``.
        """
        frames = [(request.TYPE, request.encode()) for request in requests]
        start, stuck = 0, 0
        while True:
            try:
                responses = self.link.pipeline(frames[start:])
            except ResponseLost as lost:
                if not idempotent:
                    raise
                stuck = 0 if lost.index else stuck + 1
                if stuck > self.link.retries:
                    raise
                start += lost.index
                self.link.hello()
                continue
            for request, frame in zip(requests[start:], responses):
                decode_reply(request.TYPE, frame.type, frame.payload)
            return

    # -- loading -----------------------------------------------------------------------------------------------

    def _program(self, model_or_program, stream):
        core = self.info.core
        if isinstance(model_or_program, Model):
            if stream is None:
                try:
                    return compile_model(model_or_program, core)
                except FitError:
                    if not core.weight_stream:
                        raise
                stream = True
            return compile_model(model_or_program, core, stream=stream)
        if not isinstance(model_or_program, Program):
            raise TypeError(f"load takes a Model or a Program, not {type(model_or_program).__name__}")
        program = model_or_program
        if dataclasses.replace(program.core, name=core.name) != core:
            raise ValueError(f"the program was compiled for {program.core}, the device's core is {core}")
        if program.formats != Formats():
            raise ValueError(f"the program was compiled for formats {program.formats}, the device computes in "
                             f"{Formats()}")
        return program

    def words_per_write(self):
        """Words per WRITE: as many as fit a payload, and few enough that two WRITE frames fit the credit (so that
        one is on the wire while the other is answered)."""
        return max(1, Write.capacity(self.link.credit // 2 - HEADER_SIZE - CRC_SIZE))

    def load(self, model_or_program, *, stream=None):
        """Put a model on the device: write its weight image and program, check their digests, zero the state.

        Parameters
        ----------
        model_or_program : mmfree.host.model.Model or mmfree.host.compiler.Program
            A model is compiled for the device's core (:attr:`info`); a program must have been compiled for it,
            in the device's formats (``Formats()``).
        stream : bool or None
            Compile a model streamed: its matrices and embedding rows go over the link with every token
            (:meth:`generate` sends them) and only the rest is loaded now. None: resident if it fits, else streamed
            where the device has a weight stream.

        Returns
        -------
        mmfree.host.compiler.Program
            What was loaded (also :attr:`program`).

        Raises
        ------
        mmfree.host.compiler.FitError
            The model does not fit the device's core (raised before anything is sent).
        DigestMismatch
            The device's CRC of a region differs from the host's.
        """
        program = self._program(model_or_program, stream)
        regions = {Region.IMAGE: np.asarray(program.image, dtype=np.uint64),
                   Region.PROGRAM: instruction_words(program.instructions)}
        self._generation += 1
        self.program = None
        per = self.words_per_write()
        with tqdm(total=sum(len(words) for words in regions.values()), desc="load", unit="word", unit_scale=True,
                  delay=0.5, disable=not self.progress, file=sys.stderr, leave=False) as bar:
            for region, words in regions.items():
                writes = [Write(region, offset, words[offset:offset + per]) for offset in range(0, len(words), per)]
                for start in range(0, len(writes), _WRITE_BATCH):
                    batch = writes[start:start + _WRITE_BATCH]
                    self.send_all(batch)
                    bar.update(sum(len(write.words) for write in batch))
        for region, words in regions.items():
            device, host = self.call(Digest(region, len(words))).crc, digest(words)
            if device != host:
                raise DigestMismatch(f"{region.name.lower()}: the device's CRC-32 of its {len(words):,} words is "
                                     f"0x{device:08x}, the host wrote words with CRC-32 0x{host:08x}")
        self.call(Reset())
        self.program = program
        return program

    # -- running -----------------------------------------------------------------------------------------------

    def reset(self):
        """Zero the device's recurrent state (ends a generation in progress)."""
        self._generation += 1
        self.call(Reset())

    def generate(self, prompt_tokens, max_new_tokens, temperature=0.0, seed=1, *, reset=True):
        """Generate tokens on the device, streaming them as they arrive.

        The prompt is sent and run before this returns (so its errors raise here); the tokens are pulled one NEXT
        at a time while the returned iterator is consumed (stop consuming to stop early). For a streamed program
        each token's run, prompt ids included, takes its matrices and embedding row from STREAM requests that this
        method sends (``Program.pass_words``; the progress bar counts them).

        Parameters
        ----------
        prompt_tokens : sequence of int
            Token ids, fed in order (split over several GENERATE requests when long). May be empty with
            ``reset=False``: generation then continues from the device's last logits.
        max_new_tokens : int
            Tokens to generate (0 … 2³² − 1).
        temperature : float
            0: greedy (the first maximum of the logits); else Gumbel-max sampling at ``T``
            (:class:`~mmfree.host.gumbel.GumbelSampler`, ``1/T`` as a 16-bit :class:`~mmfree.host.fixed.Scalar`).
        seed : int
            The sampler's LFSR seed, 0 … 2³² − 1 (0 acts as 1).
        reset : bool
            Zero the recurrent state before the prompt; False continues from the state the device holds.

        Returns
        -------
        iterator of int
            The generated token ids.

        Raises
        ------
        mmfree.host.commands.CommandError
            The device refused the prompt (a token id outside the vocabulary, nothing loaded, …).
        """
        prompt = [_check_uint("prompt token id", token, 32) for token in prompt_tokens]
        max_new_tokens = _check_uint("max_new_tokens", max_new_tokens, 32)
        seed = _check_uint("seed", seed, 32)
        inv_temperature = GumbelSampler.inverse_temperature(temperature)
        if reset and not prompt:
            raise ValueError("the prompt must hold at least one token (or continue with reset=False)")
        streamed = self.program is not None and self.program.pass_length > 0
        per = 1 if streamed else Generate.capacity(wide=any(token > 0xFFFF for token in prompt))
        chunks = [prompt[start:start + per] for start in range(0, len(prompt), per)] or [[]]
        self._generation += 1
        start = time.perf_counter()
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            self.call(Generate(chunk, max_new_tokens if last else 0, inv_temperature, seed, reset and index == 0,
                                stream=streamed))
            for token in chunk if streamed else ():
                self._send_pass(token)
        self._wall += time.perf_counter() - start
        return self._pull(self._generation, streamed)

    def _send_pass(self, token):
        """STREAM the words of ``token``'s run (a streamed program's :meth:`~mmfree.host.compiler.Program.pass_words`)."""
        words = self.program.pass_words(token)
        per = max(1, Stream.capacity(self.link.credit // 2 - HEADER_SIZE - CRC_SIZE))
        with tqdm(total=len(words), desc=f"stream token {token}", unit="word", unit_scale=True, delay=0.5,
                  disable=not self.progress, file=sys.stderr, leave=False) as bar:
            for first in range(0, len(words), per * _WRITE_BATCH):
                batch = words[first:first + per * _WRITE_BATCH]
                self.send_all([Stream(batch[k:k + per]) for k in range(0, len(batch), per)], idempotent=False)
                bar.update(len(batch))

    def _pull(self, generation, streamed):
        tokens = 0
        while True:
            if generation != self._generation:
                raise RuntimeError("this generation was ended by a later generate(), load() or reset()")
            start = time.perf_counter()
            reply = self.call(Next())
            if streamed and not isinstance(reply, Done):
                self._send_pass(reply.token)
            self._wall += time.perf_counter() - start
            if isinstance(reply, Done):
                if reply.tokens != tokens:
                    raise ValueError(f"the device reports {reply.tokens} tokens generated, {tokens} arrived")
                self._total_cycles += reply.cycles
                return
            tokens += 1
            self._tokens += 1
            self._cycles += reply.cycles
            yield reply.token

    def read(self, what, index=0):
        """Debug read-back from the device.

        Parameters
        ----------
        what : {"slot", "state", "logits"} or mmfree.host.commands.Target
            A vector slot (``index``: :class:`~mmfree.host.isa.Slot`), a layer's recurrent state (``index``: the
            layer), or the head's accumulators after the last token run.
        index : int

        Returns
        -------
        values : ndarray of int64
            The whole vector (read :data:`~mmfree.host.commands.MAX_READ` values per request).
        scale : mmfree.host.fixed.Scalar or None
            Its scale (a slot's unit, the head's output scale); None for the state (Q.state_frac) and slot F.
        """
        if isinstance(what, str):
            if what.upper() not in Target.__members__:
                raise ValueError(f"read what must be one of {', '.join(t.lower() for t in Target.__members__)}, "
                                 f"not {what!r}")
            what = Target[what.upper()]
        values, length, scale = [], None, None
        while length is None or len(values) < length:
            reply = self.call(Read(what, index, MAX_READ, len(values)))
            if not reply.values:
                raise ValueError(f"READ returned no values at offset {len(values)} of {reply.length}")
            length, scale = reply.length, reply.scale
            values += reply.values
        return np.array(values, dtype=np.int64), scale

    def device_stats(self):
        """The device's counters (:class:`~mmfree.host.commands.DeviceStats`: tokens run and generated, cycles)."""
        return self.call(GetStats())

    @property
    def stats(self):
        """:class:`Stats` of this session so far."""
        clock = self.info.clock_hz
        return Stats(self._tokens, self._cycles if clock else None, self._total_cycles if clock else None, clock,
                     self._transport.sent, self._transport.received, self._wall)


def _hash_bytes(value):
    """A gateware hash as 32 bytes, from bytes or 64 hex digits."""
    if isinstance(value, str):
        try:
            value = bytes.fromhex(value)
        except ValueError:
            raise ValueError(f"expected_hash must be 32 bytes or 64 hex digits, not {value!r}") from None
    if not isinstance(value, (bytes, bytearray)) or len(value) != HASH_BYTES:
        raise ValueError(f"expected_hash must be 32 bytes or 64 hex digits, not {value!r}")
    return bytes(value)
