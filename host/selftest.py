"""The bring-up self-test: five checks of a device, from the link up to generated text (``docs/bringup.md``).

:func:`selftest` runs, in order, with the existing command set only:

1. **link**: connect (link HELLO, then INFO); the link and command-layer versions, the core, the clock, the gateware
   hash and the features; :data:`ROUND_TRIPS` INFO and as many STATS round trips, which must answer as the first
   did, and their latency.
2. **weight digest**: load the model (:meth:`~mmfree.host.runtime.Accelerator.load`), whose DIGESTs of the weight
   image and the program must equal the host's CRC-32 of what it wrote.
3. **memory test**: patterns written into the weight image's first :data:`MEMORY_WORDS` words (all zeros, all ones,
   alternating, address in data, random), each checked with DIGEST; then the address lines above them: one word at
   each power of two and at the last address, written twice with complementary values, the difference of the two
   DIGESTs of the whole region against the host's (the other words are unknown, but stay put between the two). READ
   cannot check the image: it has no target for it. A mismatch is narrowed down to the first bad word or address.
4. **known-answer matvec**: a small random model (:data:`KAT_CONFIG`) compiled for the device's core, loaded, the
   prompt :data:`KAT_PROMPT` run, and every vector slot, every layer's state and the logits read back, element for
   element and with their scales equal to :class:`~mmfree.host.machine.Machine`'s (bit-exact with the golden model).
5. **demo tokens**: the model (reloaded where steps 3 and 4 overwrote it) generates ``tokens`` tokens greedily and
   ``tokens`` sampled (the model's temperature, else :data:`SAMPLE_TEMPERATURE`; seed :data:`SAMPLE_SEED`) from
   :data:`PROMPT`; the tokens and the last logits must equal those of the golden device with the device's core
   parameters, driven by the same runtime code.

A step that fails does not stop the run unless later steps cannot make sense: no session after the link step, or
the device stopped answering (a link error), ends it; a model that does not load skips the demo tokens. The report
says which steps did not run and why. Every failure says what was expected and what came back.
"""

import dataclasses
import datetime
import json
import statistics
import sys
import time

import numpy as np

from .build import known_gateware
from .commands import Digest, GetInfo, GetStats, Region, Write, digest, instruction_words
from .golden_device import GoldenDevice
from .isa import Slot
from .link import DeviceModel, LinkError
from .machine import Machine
from .model import Model, ModelConfig, random_model
from .models import resolve_model
from .runtime import Accelerator
from .tokenizer import make_tokenizer
from .transport import InProcessTransport

__all__ = ["Step", "SelftestReport", "selftest", "STEPS", "ROUND_TRIPS", "MEMORY_WORDS", "MEMORY_SEED",
           "KAT_CONFIG", "KAT_SEED", "KAT_PROMPT", "PROMPT", "SAMPLE_TEMPERATURE", "SAMPLE_SEED"]

#: the steps, in the order they run
STEPS = ("link", "weight digest", "memory test", "known-answer matvec", "demo tokens")
#: INFO round trips of the link step (and as many STATS)
ROUND_TRIPS = 4
#: words of the weight image that the memory test writes each pattern into (at most the whole region)
MEMORY_WORDS = 128
#: seed of the memory test's random pattern
MEMORY_SEED = 0x5E1F
#: the known-answer model's shape: small enough for every core of :data:`~mmfree.host.compiler.CORES`
KAT_CONFIG = ModelConfig(vocab_size=16, hidden_size=16, num_layers=2, intermediate_size=16)
#: … and its seed (:func:`~mmfree.host.model.random_model`)
KAT_SEED = 7
#: the token ids the known-answer model runs (two, so that the second runs on a recurrent state)
KAT_PROMPT = (3, 11)
#: the demo tokens' prompt, encoded with the model's tokenizer
PROMPT = "ROMEO:"
#: temperature of the sampled run when the model has no default of its own
SAMPLE_TEMPERATURE = 0.8
#: the sampled run's seed
SAMPLE_SEED = 1

_ALL_ONES = (1 << 64) - 1


@dataclasses.dataclass(frozen=True)
class Step:
    """One check of a self-test.

    Attributes
    ----------
    name : str
        One of :data:`STEPS`.
    passed : bool
    detail : str
        What was checked and found; for a failure, what was expected and what came back; for a step that did not
        run, why.
    seconds : float or None
        Wall time of the step; None when it did not run.
    """

    name: str
    passed: bool
    detail: str
    seconds: object

    @property
    def result(self):
        """``"pass"``, ``"FAIL"`` or ``"not run"``."""
        return "not run" if self.seconds is None else "pass" if self.passed else "FAIL"


@dataclasses.dataclass(frozen=True)
class SelftestReport:
    """What :func:`selftest` found.

    Attributes
    ----------
    device : str
        The device URL, or the ``description`` of the transport given (else its class's name).
    date : str
        When the self-test began (UTC, ISO 8601).
    info : dict
        The device's description from the link step (empty when it failed): ``link_version``, ``credit`` (bytes),
        ``command_version``, ``core`` (the :class:`~mmfree.host.compiler.CoreParams` fields), ``clock_hz``,
        ``gateware_hash`` (64 hex digits), ``features`` (list of str).
    steps : tuple of Step
        One per :data:`STEPS` entry, in order.
    """

    device: str
    date: str
    info: dict
    steps: tuple

    @property
    def passed(self):
        """Whether every step ran and passed."""
        return all(step.passed for step in self.steps)

    def to_json(self):
        """The report as JSON text (an object: the attributes, ``passed``, and each step with its ``result``)."""
        return json.dumps({"device": self.device, "date": self.date, "passed": self.passed, "info": self.info,
                           "steps": [{**dataclasses.asdict(step), "result": step.result} for step in self.steps]},
                          indent=1)

    def table(self):
        """A summary for people: the verdict, then a line per step (result, seconds, detail)."""
        ran = sum(step.seconds is not None for step in self.steps)
        verdict = "PASSED" if self.passed else "FAILED"
        lines = [f"selftest of {self.device}: {verdict} ({sum(s.passed for s in self.steps)} of {len(self.steps)} "
                 f"steps passed, {ran} ran)"]
        width = max(len(step.name) for step in self.steps)
        for step in self.steps:
            seconds = "" if step.seconds is None else f"{step.seconds:.2f} s"
            lines.append(f"  {step.name:{width}}  {step.result:7}  {seconds:>8}  {step.detail}")
        return "\n".join(lines)


class _Failed(Exception):
    """A check found something other than expected; the message says what and what came back."""


class _NotRun(Exception):
    """A step cannot make sense after what went before; the message says why."""


def _stderr(message):
    print(message, file=sys.stderr, flush=True)


def _scale(scalar):
    return "none" if scalar is None else f"{scalar.mant}·2^{scalar.exp}"


def _compare(what, expected, expected_scale, got, got_scale):
    """Check a read-back vector and its scale against the expected ones; the number of values compared."""
    expected = np.asarray(expected).reshape(-1)
    if len(got) != len(expected):
        raise _Failed(f"{what}: {len(got)} values came back, expected {len(expected)}")
    bad = np.flatnonzero(got != expected)
    if bad.size:
        k = bad[0]
        raise _Failed(f"{what}: element {k} is {got[k]}, expected {expected[k]} ({bad.size} of {len(expected)} "
                      f"elements differ)")
    if got_scale != expected_scale:
        raise _Failed(f"{what}: scale {_scale(got_scale)}, expected {_scale(expected_scale)}")
    return len(expected)


def _address_in_data(addresses):
    """Words holding their address in the high half and its complement in the low half."""
    a = np.asarray(addresses, dtype=np.uint64)
    return (a << np.uint64(32)) | (a ^ np.uint64(0xFFFF_FFFF))


def _patterns(count):
    """The memory test's patterns of ``count`` words: name → uint64 array."""
    even = np.arange(count) % 2 == 0
    return {
        "all zeros": np.zeros(count, dtype=np.uint64),
        "all ones": np.full(count, _ALL_ONES, dtype=np.uint64),
        "alternating": np.where(even, np.uint64(0x5555_5555_5555_5555), np.uint64(0xAAAA_AAAA_AAAA_AAAA)),
        "address in data": _address_in_data(np.arange(count)),
        "random": np.frombuffer(np.random.default_rng(MEMORY_SEED).bytes(8 * count), dtype="<u8").astype(np.uint64),
    }


class _Run:
    """One self-test: the session, the model and what the steps left behind."""

    def __init__(self, target, model, tokens, progress):
        self.target, self.model, self.tokens, self.progress = target, model, tokens, progress
        self.acc = None
        self.info = {}
        self.loaded = False   # the model loaded and its digests checked
        self.intact = False   # … and still on the device, undisturbed

    # -- helpers -----------------------------------------------------------------------------------------------

    def _write(self, offset, words):
        """WRITE ``words`` into the weight image from word ``offset``, pipelined within the link's credit."""
        per = self.acc.words_per_write()
        self.acc.send_all([Write(Region.IMAGE, offset + k, words[k:k + per]) for k in range(0, len(words), per)])

    def _digest(self, count):
        """The device's DIGEST of the weight image's first ``count`` words."""
        return self.acc.call(Digest(Region.IMAGE, count)).crc

    def _first_bad_word(self, words):
        """Where the device's image first departs from ``words`` (its prefix's DIGEST differs): bisection over
        DIGEST counts, given that the whole prefix differs."""
        good, bad = 0, len(words)
        while bad - good > 1:
            middle = (good + bad) // 2
            if self._digest(middle) == digest(words[:middle]):
                good = middle
            else:
                bad = middle
        return bad - 1

    def _probe_difference(self, addresses, count):
        """Write address-in-data words, then their complements, at ``addresses``: the XOR of the device's DIGESTs
        of ``count`` words after each, and what the host expects of it."""
        values = _address_in_data(addresses)
        crcs = []
        for words in (values, ~values):
            self.acc.send_all([Write(Region.IMAGE, int(address), [word]) for address, word in zip(addresses, words)])
            crcs.append(self._digest(count))
        delta = np.zeros(count, dtype=np.uint64)
        delta[np.asarray(addresses)] = _ALL_ONES
        return crcs[0] ^ crcs[1], digest(delta) ^ digest(np.zeros(count, dtype=np.uint64))

    def _golden(self):
        """An accelerator on the golden device with the device's core parameters, the model loaded."""
        golden = Accelerator(InProcessTransport(DeviceModel(handler=GoldenDevice(self.acc.info.core).handle)),
                             progress=False)
        golden.load(self.model)
        return golden

    # -- the steps ---------------------------------------------------------------------------------------------

    def link(self):
        """Step 1: connect, describe the device, time round trips. Each step returns its detail."""
        if isinstance(self.target, Accelerator):
            self.acc = self.target
        elif isinstance(self.target, str):
            self.acc = Accelerator.open(self.target, progress=self.progress)
        else:
            try:
                self.acc = Accelerator(self.target, progress=self.progress)
            except BaseException:
                self.target.close()
                raise
        acc, info = self.acc, self.acc.info
        core = info.core
        features = ["weight stream"] if core.weight_stream else []
        self.info = {"link_version": acc.link.info.version, "credit": acc.link.credit, "command_version": info.version,
                     "core": dataclasses.asdict(core), "clock_hz": info.clock_hz,
                     "gateware_hash": info.gateware_hash.hex(), "features": features}
        latencies = []
        stats = None
        for request in [GetInfo(), GetStats()] * ROUND_TRIPS:
            start = time.perf_counter()
            answer = acc.call(request)
            latencies.append(time.perf_counter() - start)
            if isinstance(request, GetInfo) and answer != info:
                raise _Failed(f"INFO changed between round trips: first {info}, then {answer}")
            if isinstance(request, GetStats):
                if stats is not None and answer != stats:
                    raise _Failed(f"STATS changed while the device was idle: first {stats}, then {answer}")
                stats = answer
        if any(info.gateware_hash):
            manifest = known_gateware().get(info.gateware_hash)
            hash_text = info.gateware_hash.hex() + (f" (the bitstream of {manifest})" if manifest else
                                                    " (not a bitstream the package ships or one built here)")
        else:
            hash_text = "all zeros (no gateware hash: a virtual board or the golden device)"
        clock = f"{info.clock_hz / 1e6:g} MHz" if info.clock_hz else "none"
        return (f"link v{acc.link.info.version} (credit {acc.link.credit} bytes, payloads ≤ "
                f"{acc.link.info.max_payload}), command layer v{info.version}; core {core.name}: {core.rows} rows, "
                f"{core.trit_format}, {core.weight_words:,} weight words, vectors ≤ {core.max_vector}, "
                f"{core.state_words} state words, {core.acc_bits}-bit accumulators, {core.program_instructions} "
                f"instructions; clock {clock}; gateware hash {hash_text}; features: {', '.join(features) or 'none'}; "
                f"{ROUND_TRIPS} INFO + {ROUND_TRIPS} STATS round trips: median "
                f"{1e3 * statistics.median(latencies):.2f} ms, max {1e3 * max(latencies):.2f} ms; STATS: "
                f"{stats.tokens_run:,} tokens run, {stats.tokens_generated:,} generated, {stats.cycles:,} cycles")

    def weight_digest(self):
        """Step 2: load the model; the runtime compares the DIGESTs (``DigestMismatch``)."""
        program = self.acc.load(self.model)
        self.loaded = self.intact = True
        image, code = program.image, instruction_words(program.instructions)
        return (f"image: {len(image):,} words, CRC-32 0x{digest(image):08x}; program: {len(program.instructions)} "
                f"instructions ({len(code)} words), CRC-32 0x{digest(code):08x}; the device's DIGESTs equal the "
                f"host's")

    def memory_test(self):
        """Step 3: patterns in the image's first words, then the address lines above them."""
        total = self.acc.info.core.weight_words
        count = min(total, MEMORY_WORDS)
        patterns = _patterns(count)
        self.intact = False
        for name, words in patterns.items():
            self._write(0, words)
            device, host = self._digest(count), digest(words)
            if device != host:
                bad = self._first_bad_word(words)
                raise _Failed(f"pattern {name!r} in words 0…{count - 1}: DIGEST 0x{device:08x}, expected "
                              f"0x{host:08x}; the first word that differs is word {bad} (written "
                              f"0x{int(words[bad]):016x})")
        probes = sorted({1 << k for k in range(total.bit_length()) if count <= 1 << k < total} |
                        ({total - 1} if total > count else set()))
        checked = f"{len(patterns)} patterns in words 0…{count - 1}, each checked with DIGEST"
        if not probes:
            return checked + "; no address above them"
        device, host = self._probe_difference(probes, total)
        if device != host:
            for address in probes:
                device, host = self._probe_difference([address], address + 1)
                if device != host:
                    raise _Failed(f"address line probe at word {address}: the DIGESTs of words 0…{address} after "
                                  f"writing a word and its complement there differ by 0x{device:08x}, expected "
                                  f"0x{host:08x} (the write landed elsewhere, or did not stick)")
            raise _Failed(f"address line probes {probes}: the DIGESTs of the whole image after writing them and "
                          f"their complements differ by 0x{device:08x}, expected 0x{host:08x}")
        return (f"{checked}; address lines: {len(probes)} probes at words {', '.join(map(str, probes))}, each "
                f"written with a word and its complement, DIGESTs of all {total:,} words agree (READ has no "
                f"weight-image target: not used)")

    def known_answer_matvec(self):
        """Step 4: the known-answer model's slots, state and logits against the instruction-level model's."""
        self.intact = False
        program = self.acc.load(random_model(KAT_CONFIG, seed=KAT_SEED))
        for _ in self.acc.generate(KAT_PROMPT, 0):
            pass
        machine = Machine(program)
        for token in KAT_PROMPT:
            machine.run(token)
        compared = []
        for slot, (values, units) in sorted(machine.slots.items()):
            got, scale = self.acc.read("slot", slot)
            compared.append(_compare(f"slot {slot.name}", values, units[0] if units else None, got, scale))
        for layer, values in sorted(machine.state.items()):
            got, scale = self.acc.read("state", layer)
            compared.append(_compare(f"layer {layer}'s state", values, None, got, scale))
        acc, scales = machine.logits
        got, scale = self.acc.read("logits")
        compared.append(_compare("logits", acc, scales[0], got, scale))
        c = KAT_CONFIG
        return (f"random model V={c.vocab_size}, H={c.hidden_size}, L={c.num_layers}, I={c.intermediate_size} (seed "
                f"{KAT_SEED}; {len(program.image)} image words), prompt {list(KAT_PROMPT)}: slots "
                f"{', '.join(Slot(s).name for s in sorted(machine.slots))}, {len(machine.state)} layers' state and "
                f"the logits equal the instruction-level model's, {sum(compared)} values and their scales")

    def demo_tokens(self):
        """Step 5: greedy and sampled tokens, and the logits after them, against the golden device's."""
        if not self.loaded:
            raise _NotRun("the model did not load (weight digest)")
        reloaded = not self.intact
        if reloaded:
            self.acc.load(self.model)
            self.intact = True
        tokenizer = make_tokenizer(self.model.tokenizer)
        prompt = tokenizer.encode(PROMPT)
        vocabulary = self.model.config.vocab_size
        if max(prompt) >= vocabulary:
            raise _Failed(f"the prompt {PROMPT!r} encodes to ids {prompt}, beyond the model's vocabulary of "
                          f"{vocabulary}")
        temperature = self.model.generation.get("temperature") or SAMPLE_TEMPERATURE
        golden = self._golden()
        parts = []
        before = self.acc.stats
        runs = (("greedy", 0.0, 1), (f"sampled at T={temperature:g}, seed {SAMPLE_SEED}", temperature, SAMPLE_SEED))
        with golden:
            for label, t, seed in runs:
                got = list(self.acc.generate(prompt, self.tokens, t, seed))
                expected = list(golden.generate(prompt, self.tokens, t, seed))
                if got != expected:
                    k = next((k for k, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
                    raise _Failed(f"{label}: token {k} is {got[k] if k < len(got) else 'missing'}, golden:// gives "
                                  f"{expected[k] if k < len(expected) else 'none'} (device {got}, golden {expected})")
                logits = _compare(f"{label}: the logits after the last token", *golden.read("logits"),
                                  *self.acc.read("logits"))
                parts.append(f"{label}: {tokenizer.decode(got)!r} and the {logits} logits after it equal golden://'s")
        after = self.acc.stats
        tokens = after.tokens - before.tokens
        speed = ""
        if after.cycles is not None:
            cycles = (after.cycles - before.cycles) / tokens
            speed = f"; {cycles:,.0f} device cycles per token = {after.clock_hz / cycles:,.1f} tokens/s at the clock"
        wall = (after.wall_s - before.wall_s) / tokens
        return (f"{'model reloaded; ' if reloaded else ''}prompt {PROMPT!r}, {self.tokens} tokens each; "
                f"{'; '.join(parts)}{speed}; {1e3 * wall:.1f} ms per token wall")


def selftest(runtime_or_url, *, model="demo", tokens=16, progress=True):
    """Run the self-test of a device (see the module notes).

    Parameters
    ----------
    runtime_or_url : mmfree.host.runtime.Accelerator, str or transport
        A session (left open), a device URL (:func:`~mmfree.host.transport.open_transport`), or a transport
        (``write``, ``read``, ``close``: a :class:`~mmfree.host.recording.RecordingTransport` or
        :class:`~mmfree.host.recording.ReplayTransport`, say); what this function opens or is given as a transport it
        closes.
    model : mmfree.host.model.Model or str
        The model of the weight digest and the demo tokens, or its spec (:func:`~mmfree.host.models.resolve_model`).
    tokens : int
        Tokens of each demo run (greedy and sampled).
    progress : bool
        Say on stderr which step runs and how it ended, and show the runtime's progress bars.

    Returns
    -------
    SelftestReport
    """
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1:
        raise ValueError(f"tokens must be a positive int, not {tokens!r}")
    if not isinstance(model, Model):
        model = resolve_model(model)
    device = runtime_or_url if isinstance(runtime_or_url, str) else \
        getattr(runtime_or_url, "description", type(runtime_or_url).__name__)
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    run = _Run(runtime_or_url, model, tokens, progress)
    steps, stop = [], None
    try:
        for number, name in enumerate(STEPS, start=1):
            if stop:
                steps.append(Step(name, False, f"not run: {stop}", None))
                continue
            if progress:
                _stderr(f"[{number}/{len(STEPS)}] {name} …")
            start = time.perf_counter()
            try:
                step = Step(name, True, getattr(run, name.replace(" ", "_").replace("-", "_"))(), 0.0)
            except _NotRun as reason:
                step = Step(name, False, f"not run: {reason}", None)
            except (LinkError, ValueError, RuntimeError, OSError, _Failed) as error:
                detail = str(error) if isinstance(error, _Failed) else f"{type(error).__name__}: {error}"
                step = Step(name, False, detail, 0.0)
                if run.acc is None:
                    stop = "no session with the device (the link step failed)"
                elif isinstance(error, LinkError):
                    stop = f"the device stopped answering during the {name} step"
            if step.seconds is not None:
                step = dataclasses.replace(step, seconds=time.perf_counter() - start)
            if progress:
                _stderr(f"      {step.result} ({step.seconds or 0:.2f} s): {step.detail}")
            steps.append(step)
    finally:
        if run.acc is not None and run.acc is not runtime_or_url:
            run.acc.close()
    return SelftestReport(device, date, run.info, tuple(steps))
