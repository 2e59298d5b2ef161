"""Summaries larger than one message: split into ordered parts on the wire, reassembled before the stage.

A partition's summary of a big micro-batch (many features with data drift on, long strings) can exceed what
the producer (``message.max.bytes``), the summaries topic (``max.message.bytes``) or the model stage's input
limit (``processing.max_message_bytes``) accept. :func:`split` cuts its encoding into byte ranges, each sent
as one :class:`Part` with the same key (the model), so all parts land in one partition of the internal topic,
in order. The cut depends only on the encoded summary and the limit: the same summary is always sent as the
same parts.

:class:`Assembler` (one per owned partition of the summaries topic, in the model stage's service) collects
them per ``(model, input partition)`` and gives back the original summary when its last part arrives; the
stage only ever sees whole summaries, so its outputs are those of the unsplit case. Parts of different input
partitions interleave freely. A new first part replaces an unfinished assembly (the sending partition
restarted from its checkpoint and sends that input again, perhaps cut differently); a part that does not
continue the assembly it names is dropped and counted apart (``out_of_sequence``: the service sends it
to the dead-letter topic, as it does an undecodable summary). The parts received so far are plain data
(:meth:`Assembler.to_state`), checkpointed with the stage, because the summaries topic's offset moves past
them.

A summary that fits is sent as itself (a msgpack array of 9 fields, first byte ``0x99``); a part is an
array of 6 (``0x96``), which :func:`decode_message` tells apart.
"""

from __future__ import annotations

import base64
from typing import Any

import msgspec

from stream.scope.summary import Summary, decode, encode

__all__ = ["Assembler", "Part", "decode_message", "split"]

_PART_TAG = 0x90 | 6  # msgpack fixarray of Part's 6 fields
#: index and count as the envelope's size is estimated (uint32: the largest encoding they can take)
_BIG = 2 ** 32 - 1


class Part(msgspec.Struct, array_like=True, frozen=True):
    model: str
    partition: int
    #: the split summary's ``start``: which summary of that partition this is a part of
    start: list[int]
    index: int
    count: int
    data: bytes


_part_encoder = msgspec.msgpack.Encoder()
_part_decoder = msgspec.msgpack.Decoder(Part)


def split(s: Summary, max_bytes: int) -> list[bytes]:
    """The values of the messages that carry ``s``, each at most ``max_bytes``: its own encoding when that
    fits, else :class:`Part` s of equal byte ranges of it (the last one shorter)."""
    value = encode(s)
    if len(value) <= max_bytes:
        return [value]
    # + 3: the empty data's 2-byte bin header grows to at most 5 bytes
    envelope = len(_part_encoder.encode(Part(s.model, s.partition, s.start, _BIG, _BIG, b""))) + 3
    room = max_bytes - envelope
    if room < 1:
        raise ValueError(f"a summary part of model {s.model!r} needs more than {max_bytes} bytes of envelope")
    n = -(-len(value) // room)
    return [_part_encoder.encode(Part(s.model, s.partition, s.start, i, n, value[i * room:(i + 1) * room]))
            for i in range(n)]


def decode_message(b: bytes) -> Summary | Part:
    """A message of the summaries topic: a whole summary or one part of one (``msgspec.DecodeError`` /
    ``ValidationError`` on bad input)."""
    if b[:1] == bytes((_PART_TAG,)):
        return _part_decoder.decode(b)
    return decode(b)


class Assembler:
    """Reassembles split summaries, per (model, input partition); see the module docstring."""

    def __init__(self) -> None:
        #: (model, input partition) -> the parts received so far, in order
        self.pending: dict[tuple[str, int], list[Part]] = {}
        #: parts of an unfinished assembly that a new first part replaced (a replay of that input: the summary
        #: comes again, whole)
        self.superseded = 0
        #: parts that did not continue the assembly they name (no first part before them, a gap, another
        #: summary's parts): not a replay, bad input on the internal topic (the service dead-letters them)
        self.out_of_sequence = 0

    @property
    def dropped(self) -> int:
        """Parts dropped, for either reason."""
        return self.superseded + self.out_of_sequence

    def add(self, part: Part) -> Summary | None:
        """Take one part; the whole summary when this was its last part (``msgspec`` errors if the joined
        bytes are no summary, or not the one the parts named)."""
        key = (part.model, part.partition)
        if part.index == 0:
            old = self.pending.pop(key, None)
            if old is not None:
                self.superseded += len(old)
            have = self.pending[key] = [part]
        else:
            have = self.pending.get(key)
            if have is None or len(have) != part.index or have[0].start != part.start \
                    or have[0].count != part.count:
                self.out_of_sequence += 1
                return None
            have.append(part)
        if len(have) < part.count:
            return None
        del self.pending[key]
        s = decode(b"".join(p.data for p in have))
        if (s.model, s.partition, s.start) != (part.model, part.partition, part.start):
            raise msgspec.ValidationError(f"parts of ({part.model!r}, {part.partition}, {part.start}) hold a summary "
                                          f"of ({s.model!r}, {s.partition}, {s.start})")
        return s

    def to_state(self) -> list[list[Any]]:
        """Plain data (JSON): the parts received so far."""
        return [[m, p, list(have[0].start), have[0].count, [base64.b64encode(x.data).decode() for x in have]]
                for (m, p), have in sorted(self.pending.items())]

    def load_state(self, state: list[list[Any]]) -> None:
        self.pending = {(m, p): [Part(m, p, list(start), i, count, base64.b64decode(d)) for i, d in enumerate(data)]
                        for m, p, start, count, data in state}
