"""A stream through a small FIFO: the consumer's ``ready`` stops at the FIFO.

Where a producer's state advances on ``ready``, a consumer whose ``ready`` is a long decision makes one long path of
both. Between them, a :class:`~amaranth.lib.fifo.SyncFIFOBuffered` of 3 cuts it: its output comes from registers,
its ``w_rdy`` from its fill level alone, and it passes a beat per cycle. Cost: two cycles of latency; on ECP5, a
register and two distributed-RAM words per payload bit.
"""

from amaranth import *
from amaranth.lib import data, fifo, stream, wiring

__all__ = ["stream_fifo", "fed_through_fifo", "fed_in_lockstep"]


def stream_fifo(m, source, *, name, depth=3):
    """Queue the stream ``source`` in a FIFO added to ``m`` as submodule ``name``.

    Parameters
    ----------
    m : Module
    source : stream interface
        The producer's side (its ``valid`` and ``payload`` driven elsewhere); its ``ready`` is driven here.
    name : str
    depth : int
        Beats the FIFO holds (3: a beat per cycle through it).

    Returns
    -------
    stream interface
        The FIFO's output, of ``source``'s payload shape, for the consumer.
    """
    shape = source.payload.shape()
    m.submodules[name] = queue = fifo.SyncFIFOBuffered(width=Shape.cast(shape).width, depth=depth)
    out = stream.Signature(shape).create(path=(name, "out"))
    m.d.comb += [
        queue.w_en.eq(source.valid), queue.w_data.eq(source.payload), source.ready.eq(queue.w_rdy),
        out.valid.eq(queue.r_rdy), out.payload.eq(queue.r_data), queue.r_en.eq(out.ready),
    ]
    return out


def fed_through_fifo(m, sink, *, name, buffered=True):
    """The stream a producer drives to feed ``sink`` (a submodule's stream input).

    With ``buffered``, a new stream ``{name}_in`` whose beats reach ``sink`` through :func:`stream_fifo` (submodule
    ``{name}_fifo``); without, ``sink`` itself.
    """
    if not buffered:
        return sink
    source = stream.Signature(sink.payload.shape()).create(path=(f"{name}_in",))
    wiring.connect(m, stream_fifo(m, source, name=f"{name}_fifo"), sink)
    return source


def fed_in_lockstep(m, sinks, *, name, buffered=True):
    """The stream a producer drives to feed the identical units' inputs ``sinks`` side by side.

    A beat carries a payload per sink (``ArrayLayout``) and every sink takes its own in the same cycle. The units
    must run in lockstep (one design, the same beats, outputs always taken), so that they are ready together: the
    stream's ``ready`` is the first sink's. With ``buffered``, the beats reach them through :func:`stream_fifo`
    (submodule ``{name}_fifo``).
    """
    shape = data.ArrayLayout(sinks[0].payload.shape(), len(sinks))
    source = stream.Signature(shape).create(path=(f"{name}_in",))
    out = stream_fifo(m, source, name=f"{name}_fifo") if buffered else source
    m.d.comb += out.ready.eq(sinks[0].ready)
    for lane, sink in enumerate(sinks):
        m.d.comb += [sink.valid.eq(out.valid), sink.payload.eq(out.payload[lane])]
    return source
