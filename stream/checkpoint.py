"""Stage 7, checkpoint: a partition's state and the input offsets it reflects, atomically in Redis.

One Redis hash per (consumer group, partition), keyed ``<prefix>:{<group>:<partition>}`` (the braces keep
every key of a partition in one Redis Cluster slot):

* ``epoch``: bumped by every instance that takes the partition; a write carries the writer's epoch and
  is refused by the Lua script when the stored epoch is newer (a zombie instance cannot overwrite);
* ``state``: the sealed blob (see :func:`seal`), ``offsets``: JSON ``{topic: next offset}``;
* ``size``, ``written_ms``: bookkeeping for ``state show`` and metrics.

Sealed blobs: ``b"DS1" + hmac_sha256(key, payload) + payload``. The HMAC is checked before anything in
the payload is parsed or unpickled; a blob that fails the check raises :class:`StateRefused`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

import orjson

from stream.errors import Fenced, StateRefused

MAGIC = b"DS1"
_MAC_LEN = 32

# KEYS[1] = partition hash; ARGV = epoch, state blob, offsets json, size, written_ms
_CHECKPOINT_LUA = """
local stored = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')
local mine = tonumber(ARGV[1])
if stored > mine then
  return {0, stored}
end
redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'state', ARGV[2], 'offsets', ARGV[3],
           'size', ARGV[4], 'written_ms', ARGV[5])
return {1, mine}
"""


def seal(key: bytes, payload: bytes) -> bytes:
    return MAGIC + hmac.new(key, payload, hashlib.sha256).digest() + payload


def unseal(key: bytes, blob: bytes) -> bytes:
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + _MAC_LEN:
        raise StateRefused("checkpoint blob has an unknown format (not written by this driftstream version)")
    mac = blob[len(MAGIC): len(MAGIC) + _MAC_LEN]
    payload = blob[len(MAGIC) + _MAC_LEN:]
    if not hmac.compare_digest(mac, hmac.new(key, payload, hashlib.sha256).digest()):
        raise StateRefused(
            "checkpoint blob failed its HMAC check (tampered, or written with another hmac_key); refusing to load it"
        )
    return payload


@dataclass(frozen=True)
class Checkpoint:
    epoch: int
    offsets: dict[str, int]
    payload: bytes | None
    size: int
    written_ms: int


class CheckpointStore:
    """Reads and writes partition checkpoints. The Redis client is passed in."""

    def __init__(self, redis_client: Any, key_prefix: str, group_id: str, hmac_key: bytes) -> None:
        if not hmac_key:
            raise ValueError("an HMAC key is required for checkpoints")
        self.redis = redis_client
        self.key_prefix = key_prefix
        self.group_id = group_id
        self.hmac_key = hmac_key
        self._script = redis_client.register_script(_CHECKPOINT_LUA)

    def key(self, partition: int) -> str:
        return f"{self.key_prefix}:{{{self.group_id}:{partition}}}"

    def bump_epoch(self, partition: int) -> int:
        """Called when this instance takes the partition: from now on older owners are fenced."""
        return int(self.redis.hincrby(self.key(partition), "epoch", 1))

    def load(self, partition: int) -> Checkpoint | None:
        h = self.redis.hgetall(self.key(partition))
        if not h or b"state" not in h:
            return None
        payload = unseal(self.hmac_key, h[b"state"])
        return Checkpoint(
            epoch=int(h.get(b"epoch", b"0")),
            offsets={k: int(v) for k, v in orjson.loads(h[b"offsets"]).items()},
            payload=payload,
            size=int(h.get(b"size", b"0")),
            written_ms=int(h.get(b"written_ms", b"0")),
        )

    def read_raw(self, partition: int) -> dict[bytes, bytes]:
        return self.redis.hgetall(self.key(partition))

    def save(self, partition: int, epoch: int, payload: bytes, offsets: dict[str, int]) -> int:
        """Write state + offsets in one atomic step; raise :class:`Fenced` if a newer owner exists.
        Returns the blob size in bytes."""
        blob = seal(self.hmac_key, payload)
        ok, stored = self._script(
            keys=[self.key(partition)],
            args=[epoch, blob, orjson.dumps(offsets), len(blob), int(time.time() * 1000)],
        )
        if int(ok) != 1:
            raise Fenced(f"partition {partition}: stored epoch {int(stored)} is newer than ours ({epoch}); not writing")
        return len(blob)

    def reset(self, partition: int) -> bool:
        return bool(self.redis.delete(self.key(partition)))

    def partitions(self) -> list[int]:
        prefix = f"{self.key_prefix}:{{{self.group_id}:"
        out = []
        for k in self.redis.scan_iter(match=f"{self.key_prefix}:{{{self.group_id}:*}}"):
            k = k.decode() if isinstance(k, bytes) else k
            out.append(int(k[len(prefix):-1]))
        return sorted(out)
