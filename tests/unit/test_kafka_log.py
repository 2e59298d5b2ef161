"""librdkafka's log lines go through the ``driftstream.kafka`` logger (confluent-kafka's ``logger`` setting), with
the warnings of a broker or group that is still starting demoted to DEBUG."""

from __future__ import annotations

import logging
import time

from confluent_kafka import Consumer

from stream.clients import KafkaLog, admin_config, consumer_config, producer_config
from stream.config import AppConfig

FMT = "%s [%s] %s"  # what confluent-kafka passes


def test_transient_start_up_warnings_are_debug_and_the_rest_keeps_its_level(caplog):
    log = KafkaLog()
    with caplog.at_level(logging.DEBUG, logger="driftstream.kafka"):
        log.log(logging.WARNING, FMT, "GETPID", "rdkafka#producer-3", "[thrd:main]: Failed to acquire idempotence "
                "PID from broker 127.0.0.1:9092/1: Broker: Coordinator load in progress: retrying")
        log.log(logging.INFO, FMT, "FETCH", "rdkafka#consumer-1", "Broker: Leader not available")
        log.log(logging.WARNING, FMT, "MAXPOLL", "rdkafka#consumer-1", "Application maximum poll interval exceeded")
        log.log(logging.ERROR, FMT, "FAIL", "rdkafka#consumer-1", "Connect to ipv4#127.0.0.1:1 failed")
        log.log(logging.ERROR, FMT, "X", "rdkafka#consumer-1", "fatal: Coordinator load in progress")
    got = [(r.name, r.levelno, r.getMessage().split(" ", 1)[0]) for r in caplog.records]
    assert got == [("driftstream.kafka", logging.DEBUG, "GETPID"), ("driftstream.kafka", logging.DEBUG, "FETCH"),
                   ("driftstream.kafka", logging.WARNING, "MAXPOLL"), ("driftstream.kafka", logging.ERROR, "FAIL"),
                   ("driftstream.kafka", logging.ERROR, "X")]


def test_at_the_default_level_a_normal_start_is_quiet(caplog):
    with caplog.at_level(logging.WARNING, logger="driftstream.kafka"):
        KafkaLog().log(logging.WARNING, FMT, "GETPID", "p", "Broker: Coordinator load in progress: retrying")
        KafkaLog().log(logging.WARNING, FMT, "GETPID", "p", "Broker: Not coordinator")
    assert caplog.records == []


def test_every_client_setting_carries_the_logger_unless_one_is_given():
    cfg = AppConfig()
    for conf in (consumer_config(cfg), producer_config(cfg), admin_config(cfg)):
        assert isinstance(conf["logger"], KafkaLog)
        assert conf["logger"].logger.name == "driftstream.kafka"
    own = logging.getLogger("mine")
    cfg = AppConfig(kafka={**cfg.kafka, "logger": own})
    assert consumer_config(cfg)["logger"] is own and producer_config(cfg)["logger"] is own


def test_a_real_client_logs_through_it(caplog):
    """librdkafka itself (no broker: a refused connection) delivers its lines to the logger on poll."""
    cfg = AppConfig(kafka={"bootstrap.servers": "127.0.0.1:1", "reconnect.backoff.max.ms": 100})
    with caplog.at_level(logging.DEBUG, logger="driftstream.kafka"):
        c = Consumer(consumer_config(cfg))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not caplog.records:
            c.poll(0.2)
        c.close()
    assert caplog.records, "no librdkafka line reached driftstream.kafka"
    r = caplog.records[0]
    assert r.name == "driftstream.kafka" and r.levelno == logging.ERROR and "127.0.0.1:1" in r.getMessage()
