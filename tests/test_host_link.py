"""The host side of the link: the wire format (CRC, frames, the resynchronising decoder), the device model, and the
session (sequence numbers, credits, retries, errors) over fake transports that corrupt and drop."""

import random

import pytest

from mmfree.host import protocol
from mmfree.host.link import (DeviceError, DeviceModel, Link, LinkTimeout, ResponseLost, SequenceError,
                              VersionMismatch)
from mmfree.host.protocol import ErrorCode, Frame, FrameDecoder, crc16, encode_frame, frame_size


# -- the wire format -----------------------------------------------------------------------------------------------

def test_crc16_check_value_and_residue():
    assert crc16(b"123456789") == 0x29B1
    assert crc16(b"") == 0xFFFF
    rng = random.Random(1)
    for _ in range(200):
        data = rng.randbytes(rng.randrange(0, 300))
        assert crc16(data + crc16(data).to_bytes(2, "big")) == 0
        assert crc16(data[5:], crc16(data[:5])) == crc16(data)


def test_frame_layout():
    assert encode_frame(0x10, 7) == bytes([0xA5, 0, 0, 7, 0x10]) + crc16(bytes([0, 0, 7, 0x10])).to_bytes(2, "big")
    frame = encode_frame(0x90, 0xFE, b"\x01\x02\x03")
    assert len(frame) == frame_size(3) == 12
    assert frame[:5] == bytes([0xA5, 0, 3, 0xFE, 0x90]) and frame[7:10] == b"\x01\x02\x03"
    assert frame[10:] == crc16(b"\x01\x02\x03").to_bytes(2, "big")
    assert frame_size(0) == 7 and frame_size(protocol.MAX_PAYLOAD) == protocol.MAX_PAYLOAD + 9


@pytest.mark.parametrize("args, message", [
    ((256, 0), "type must be an int in 0..255"), ((1, -1), "seq must be an int in 0..255"),
    ((True, 0), "type must be an int"), ((1, 0, bytes(257)), "exceeds MAX_PAYLOAD = 256"),
])
def test_encode_rejects(args, message):
    with pytest.raises(ValueError, match=message):
        encode_frame(*args)


def random_frame(rng):
    return Frame(rng.randrange(256), rng.randrange(256), rng.randbytes(rng.choice([0, 1, 2, rng.randrange(257)])))


def test_decoder_round_trip_in_pieces():
    rng = random.Random(2)
    frames = [random_frame(rng) for _ in range(300)]
    stream = b"".join(frame.encode() for frame in frames)
    decoder, got, at = FrameDecoder(), [], 0
    while at < len(stream):
        step = rng.randrange(1, 40)
        got += decoder.feed(stream[at:at + step])
        at += step
    assert got == frames and decoder.pending == 0
    assert (decoder.skipped, decoder.bad_headers, decoder.bad_crcs) == (0, 0, 0)


def test_decoder_resynchronises_on_garbage_and_damage():
    """Garbage full of sync bytes between frames, and frames with a flipped bit: every intact frame comes out."""
    rng = random.Random(3)
    stream, intact = bytearray(), []
    for _ in range(500):
        frame = random_frame(rng)
        data = bytearray(frame.encode())
        kind = rng.random()
        if kind < 0.2:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif kind < 0.3:
            data = data[:rng.randrange(1, len(data))]
        else:
            intact.append(frame)
        if rng.random() < 0.3:
            stream += bytes(rng.choice([protocol.SYNC, rng.randrange(256)]) for _ in range(rng.randrange(1, 12)))
        stream += data
        if len(data) < frame_size(len(frame.payload)):
            stream += bytes(protocol.HEADER_SIZE + protocol.MAX_PAYLOAD + 2)  # a truncated frame swallows bytes
    decoder = FrameDecoder()
    got = decoder.feed(bytes(stream))
    # a damaged frame can swallow the next frame's start (a truncated one is padded above so that it cannot)
    assert [frame for frame in got if frame in intact] == [frame for frame in intact if frame in got]
    assert len(got) >= 0.95 * len(intact)
    assert decoder.bad_headers > 0 and decoder.bad_crcs > 0


def test_decoder_flush_drops_partial_frame():
    decoder = FrameDecoder()
    data = encode_frame(0x90, 1, b"abc")
    assert decoder.feed(data[:5]) == [] and decoder.pending == 5
    decoder.flush()
    assert decoder.pending == 0 and decoder.feed(data) == [Frame(0x90, 1, b"abc")]


def test_hello_and_error_payloads():
    assert protocol.parse_hello(protocol.hello_payload(504)) == protocol.Hello(protocol.VERSION, 504, 256)
    assert protocol.parse_error(protocol.error_payload(ErrorCode.BAD_SEQUENCE, 4, 9)) == \
        protocol.LinkErrorReport(ErrorCode.BAD_SEQUENCE, 4, 9)
    assert protocol.parse_error(bytes([200, 0, 0])).code == 200
    with pytest.raises(ValueError, match="5-byte payload"):
        protocol.parse_hello(b"\x01")
    with pytest.raises(ValueError, match="3-byte payload"):
        protocol.parse_error(b"")


# -- the device model ----------------------------------------------------------------------------------------------

def frames_of(outputs):
    return [frame for frame, _ in outputs]


def test_device_model_rules():
    device = DeviceModel(depth=512)
    hello = frames_of(device.feed(encode_frame(protocol.HELLO, 41)))
    assert hello == [Frame(protocol.HELLO_REPLY, 41, protocol.hello_payload(504))]
    assert frames_of(device.feed(encode_frame(0x10, 42, b"hi"))) == [Frame(0x90, 42, b"hi")]
    assert frames_of(device.feed(encode_frame(0x10, 42, b"other"))) == [Frame(0x90, 42, b"hi")]  # resent
    error = lambda code, expected, got: Frame(protocol.ERROR, got, protocol.error_payload(code, expected, got))
    assert frames_of(device.feed(encode_frame(0x10, 45))) == [error(ErrorCode.BAD_SEQUENCE, 43, 45)]
    assert frames_of(device.feed(encode_frame(0x05, 43))) == [error(ErrorCode.UNKNOWN_TYPE, 43, 43)]
    bad = bytearray(encode_frame(0x10, 43, b"xyz"))
    bad[8] ^= 4
    assert frames_of(device.feed(bad)) == [error(ErrorCode.BAD_CRC, 43, 43)]
    bad[3] ^= 1
    assert frames_of(device.feed(bad)) == [error(ErrorCode.BAD_HEADER, 43, 42)]
    long = bytes([protocol.SYNC, 1, 1, 43, 0x10]) + crc16(bytes([1, 1, 43, 0x10])).to_bytes(2, "big")
    assert frames_of(device.feed(long)) == [error(ErrorCode.BAD_LENGTH, 43, 43)]
    assert device.feed(encode_frame(0x10, 43, b"abc")[:9]) == [] and device.in_frame
    assert frames_of(device.timeout()) == [error(ErrorCode.TIMEOUT, 43, 43)]
    device.stalled = True
    sizes = []
    while not (out := device.feed(encode_frame(0x11, device.expected, bytes(100)))):
        sizes.append(104)
    assert frames_of(out) == [error(ErrorCode.OVERFLOW, device.expected, device.expected)]
    assert sum(sizes) + 104 > 512 >= sum(sizes)
    assert device.feed(encode_frame(0x10, (device.expected - 1) & 0xFF)) == []  # a duplicate while busy: dropped
    assert frames_of(device.resume()) == [Frame(0x91, 43 + k, bytes(100)) for k in range(len(sizes))]


# -- the session ---------------------------------------------------------------------------------------------------

def damage(rng, data, p):
    """``data`` with, at probability ``p``, one bit flipped, a byte dropped or the tail cut off."""
    if not data or rng.random() >= p:
        return data
    data = bytearray(data)
    kind = rng.randrange(3)
    at = rng.randrange(len(data))
    if kind == 0:
        data[at] ^= 1 << rng.randrange(8)
    elif kind == 1:
        del data[at]
    else:
        del data[at:]
    return bytes(data)


class FakeLine:
    """A transport to a :class:`DeviceModel` that damages frames on the way up (``p_up``) and down (``p_down``).
    A read that finds nothing lets the device's inter-byte timeout expire. It records the most request bytes the
    host had unanswered (``peak``)."""

    def __init__(self, device, rng, *, p_up=0.0, p_down=0.0, check_credit=None):
        self.device, self.rng, self.p_up, self.p_down = device, rng, p_up, p_down
        self.queue = bytearray()
        self.writes = 0
        self.check_credit = check_credit

    def _deliver(self, outputs):
        for frame, _ in outputs:
            self.queue += damage(self.rng, frame.encode(), self.p_down)

    def write(self, data):
        self.writes += 1
        if self.check_credit:
            self.check_credit()
        self._deliver(self.device.feed(damage(self.rng, data, self.p_up)))

    def read(self, n, timeout):
        if not self.queue:
            self._deliver(self.device.timeout())
        if not self.queue and self.device.stalled:
            self._deliver(self.device.resume())
        data = bytes(self.queue[:n])
        del self.queue[:n]
        return data


def test_request_on_a_clean_line():
    device = DeviceModel()
    link = Link(FakeLine(device, random.Random(0)), first_seq=250)
    info = link.hello()
    assert info == protocol.Hello(protocol.VERSION, 504, protocol.MAX_PAYLOAD) and link.credit == 504
    for k in range(20):  # sequence numbers wrap
        assert link.request(bytes([k]) * k) == Frame(protocol.RESPONSE, (251 + k) & 0xFF, bytes([k]) * k)
    assert link.request(b"x", type=0x7F) == Frame(0xFF, (251 + 20) & 0xFF, b"x")
    assert link.retransmissions == 0 and link.in_flight == 0


def test_pipeline_keeps_within_credit():
    """A device that reads nothing until the host waits: the host sends exactly up to its credit, no overflow."""
    rng = random.Random(4)
    device = DeviceModel(depth=1024)
    link = Link(None)
    line = FakeLine(device, rng, check_credit=lambda: peaks.append(link.in_flight))
    link.transport = line
    peaks = []
    link.hello()
    device.stalled = True
    requests = [rng.randbytes(rng.randrange(0, 257)) for _ in range(200)]
    responses = link.pipeline(requests)
    assert [frame.payload for frame in responses] == requests
    assert max(peaks) <= link.credit and max(peaks) > link.credit - frame_size(256)
    assert link.retransmissions == 0 and link.in_flight == 0


@pytest.mark.parametrize("p_up, p_down", [(0.2, 0.0), (0.0, 0.2), (0.15, 0.15)])
def test_request_retries_over_a_bad_line(p_up, p_down):
    rng = random.Random(int(p_up * 100 + p_down * 10))
    link = Link(FakeLine(DeviceModel(), rng, p_up=p_up, p_down=p_down), retries=20)
    link.hello()
    for k in range(300):
        payload = rng.randbytes(rng.randrange(0, 100))
        assert link.request(payload, type=0x10 + k % 0x70) == Frame(0x90 + k % 0x70, (1 + k) & 0xFF, payload)
    assert link.retransmissions > 20


def test_pipeline_recovers_from_lost_requests():
    rng = random.Random(5)
    link = Link(FakeLine(DeviceModel(), rng, p_up=0.05), retries=20)
    link.hello()
    requests = [rng.randbytes(rng.randrange(0, 120)) for _ in range(1000)]
    assert [frame.payload for frame in link.pipeline(requests)] == requests
    assert link.retransmissions > 0


class DeadLine:
    def __init__(self):
        self.writes = 0

    def write(self, data):
        self.writes += 1

    def read(self, n, timeout):
        return b""


def test_timeout_after_retries():
    line = DeadLine()
    with pytest.raises(LinkTimeout, match="no HELLO reply after 3 retries"):
        Link(line, retries=3, timeout=0.01).hello()
    assert line.writes == 4
    link = Link(FakeLine(DeviceModel(), random.Random(0)), retries=2, timeout=0.01)
    link.hello()
    link.transport = line
    with pytest.raises(LinkTimeout, match=r"no answer to request 0 \(seq 1\) after 2 retries"):
        link.request(b"abc")


def test_persistent_device_error():
    """Every request arrives with a damaged payload: the device answers BAD_CRC until the link gives up."""
    device = DeviceModel()
    link = Link(FakeLine(device, random.Random(0)), retries=3)
    link.hello()

    class Corrupting(FakeLine):
        def write(self, data):
            data = bytearray(data)
            data[-1] ^= 1
            super().write(bytes(data))

    link.transport = Corrupting(device, random.Random(0))
    with pytest.raises(DeviceError, match="still failing after 3 retries") as error:
        link.request(b"payload")
    assert error.value.report.code == ErrorCode.BAD_CRC


def test_sequence_error_after_device_reset():
    line = FakeLine(DeviceModel(), random.Random(0))
    link = Link(line)
    link.hello()
    link.request(b"a")
    line.device = DeviceModel()  # power cycled: expects seq 0, has no last request
    with pytest.raises(SequenceError, match="expects seq 0"):
        link.request(b"b")
    link.hello()
    assert link.request(b"c").payload == b"c"


def test_lost_response_behind_later_ones():
    rng = random.Random(0)

    class DropsOne(FakeLine):
        dropped = False

        def _deliver(self, outputs):
            for frame, _ in outputs:
                if frame.seq == 3 and frame.type == protocol.RESPONSE and not self.dropped:
                    self.dropped = True
                    continue
                self.queue += frame.encode()

    link = Link(DropsOne(DeviceModel(), rng))
    link.hello()
    with pytest.raises(ResponseLost, match="request 2") as error:
        link.pipeline([b"a", b"b", b"c", b"d"])
    assert error.value.index == 2


def test_version_mismatch():
    class OtherVersion(FakeLine):
        def _deliver(self, outputs):
            for frame, _ in outputs:
                self.queue += Frame(frame.type, frame.seq, bytes([9]) + frame.payload[1:]).encode()

    with pytest.raises(VersionMismatch, match="protocol version 9"):
        Link(OtherVersion(DeviceModel(), random.Random(0))).hello()


@pytest.mark.parametrize("kwargs, message", [
    ({"timeout": 0}, "timeout must be a positive number"), ({"retries": -1}, "retries must be a non-negative int"),
    ({"first_seq": 256}, "first_seq must be an int in 0..255"),
])
def test_link_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Link(DeadLine(), **kwargs)


@pytest.mark.parametrize("request_, message", [
    ((protocol.HELLO, b""), "type 1 is not a request type"),
    ((0x80, b""), "type 128 is not a request type"),
    (bytes(257), "exceeds the device's maximum of 256"),
])
def test_request_checks(request_, message):
    link = Link(FakeLine(DeviceModel(), random.Random(0)))
    link.hello()
    with pytest.raises(ValueError, match=message):
        link.pipeline([request_])
