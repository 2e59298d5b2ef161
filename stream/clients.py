"""Client settings and factories: Kafka consumer/producer/admin settings from ``[kafka]``, the Redis client from
``[redis]``, watermark look-ups, and the one backoff helper every retry loop uses.

Settings under ``[kafka]`` and ``[redis]`` pass through untouched (security, timeouts, TLS); the service only
adds what its guarantees need (no auto commit, the range assignor, an idempotent producer) and routes
librdkafka's log lines through the ``driftstream.kafka`` logger (:class:`KafkaLog`).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, TypeVar

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from stream.config import AppConfig

log = logging.getLogger("driftstream")

T = TypeVar("T")

PRODUCER_DEFAULTS = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 5,
    "compression.type": "lz4",
}


class KafkaLog:
    """librdkafka's log lines through a Python logger (confluent-kafka's ``logger`` client setting), instead
    of librdkafka writing them to stderr itself: they reach the service's handlers and format, and the
    logger's level decides what shows. confluent-kafka calls ``log(level, "%s [%s] %s", facility, client,
    text)`` with the level already mapped from syslog's, from the thread that polls the client.

    A few warnings are conditions that clear by themselves within seconds while a broker or a group starts
    (its coordinator is still loading, a partition created a moment ago has no leader yet): librdkafka
    retries them, and the service reports what does not clear. They are logged at DEBUG, so that a normal
    start is quiet; every other line keeps librdkafka's level (a broker that cannot be reached is an ERROR).
    """

    TRANSIENT = ("Coordinator load in progress", "COORDINATOR_LOAD_IN_PROGRESS", "Not coordinator",
                 "NOT_COORDINATOR", "Coordinator not available", "COORDINATOR_NOT_AVAILABLE",
                 "Leader not available", "LEADER_NOT_AVAILABLE")

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger if logger is not None else logging.getLogger("driftstream.kafka")

    def log(self, level: int, msg: str, *args: Any, **kwargs: Any) -> None:
        if logging.DEBUG < level < logging.ERROR and any(t in (msg % args if args else msg) for t in self.TRANSIENT):
            level = logging.DEBUG
        self.logger.log(level, msg, *args, **kwargs)


def _with_logger(conf: dict[str, Any]) -> dict[str, Any]:
    """``conf`` with a :class:`KafkaLog` unless the settings bring a ``logger`` of their own."""
    if "logger" not in conf:
        conf["logger"] = KafkaLog()
    return conf


def consumer_config(cfg: AppConfig) -> dict[str, Any]:
    conf = {
        "group.id": cfg.processing.group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": cfg.processing.start_from,
        # range keeps partition i of both co-partitioned topics on the same member
        "partition.assignment.strategy": "range",
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 2000,
    }
    conf.update(cfg.kafka)
    return _with_logger(conf)


def producer_config(cfg: AppConfig) -> dict[str, Any]:
    conf = dict(PRODUCER_DEFAULTS)
    conf.update({k: v for k, v in cfg.kafka.items() if not k.startswith(("group.", "session.", "heartbeat."))})
    return _with_logger(conf)


def admin_config(cfg: AppConfig) -> dict[str, Any]:
    return _with_logger({k: v for k, v in cfg.kafka.items()
                         if not k.startswith(("group.", "session.", "heartbeat.", "enable.auto"))})


def make_redis(cfg: AppConfig) -> Any:
    """A redis-py client from ``[redis]``: ``url`` plus keyword arguments passed untouched (password,
    username, ssl_ca_certs, ssl_certfile, socket_timeout, ...); ``rediss://`` URLs use TLS."""
    import redis

    settings = dict(cfg.redis)
    url = settings.pop("url")
    return redis.Redis.from_url(url, **settings)


def redis_errors() -> tuple[type[BaseException], ...]:
    """The Redis errors worth waiting out (the server is down, restarting or loading its data)."""
    import redis

    return (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)


def with_backoff(fn: Callable[[], T], retriable: Callable[[BaseException], bool], *, what: str,
                 give_up: Callable[[BaseException, float], BaseException | None] | None = None,
                 on_retry: Callable[[BaseException, float], None] | None = None,
                 attempts: int | None = None, first: float = 0.1, cap: float = 5.0,
                 sleep: Callable[[float], None] = time.sleep) -> T:
    """Call ``fn`` until it returns, retrying what ``retriable`` accepts with exponential backoff (``first``
    doubling up to ``cap`` seconds). ``give_up(exc, delay)`` may return an exception to raise instead of
    retrying (e.g. while stopping); after ``attempts`` calls the last error is raised."""
    delay = first
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as exc:
            if not retriable(exc) or (attempts is not None and attempt >= attempts):
                raise
            if give_up is not None:
                stop = give_up(exc, delay)
                if stop is not None:
                    raise stop from exc
            if on_retry is not None:
                on_retry(exc, delay)
            else:
                log.warning("%s failed (%s); retrying in %.1f s", what, exc, delay)
            sleep(delay)
            delay = min(delay * 2, cap)


def _watermarks_retriable(exc: BaseException) -> bool:
    if not isinstance(exc, KafkaException):
        return False
    err = exc.args[0] if exc.args else None
    return isinstance(err, KafkaError) and (err.retriable() or err.code() in (
        KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._TRANSPORT, KafkaError._TIMED_OUT))


def watermarks(consumer: Any, tp: TopicPartition, attempts: int = 30, sleep: Callable[[float], None] = time.sleep
               ) -> tuple[int, int]:
    """Low and high watermark of ``tp``, retrying what the broker says is retriable (a topic created a
    moment ago has no leader yet: NOT_LEADER_FOR_PARTITION / LEADER_NOT_AVAILABLE)."""
    return with_backoff(
        lambda: consumer.get_watermark_offsets(tp, timeout=10), _watermarks_retriable,
        what=f"watermarks of {tp.topic}[{tp.partition}]", attempts=attempts, cap=2.0, sleep=sleep,
        on_retry=lambda exc, d: log.warning("watermarks of %s[%d] not available yet (%s); retrying",
                                            tp.topic, tp.partition, exc.args[0] if exc.args else exc))
