"""Security settings reach the clients untouched; secrets never reach output."""

from __future__ import annotations

from stream.clients import consumer_config, make_redis, producer_config
from stream.config import load_config


def test_kafka_sasl_ssl_settings_reach_consumer_and_producer(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[kafka]\n"security.protocol" = "SASL_SSL"\n"sasl.mechanism" = "SCRAM-SHA-512"\n'
                 '"sasl.username" = "svc"\n"ssl.ca.location" = "/etc/ca.pem"\n')
    cfg = load_config(f, {"DRIFTSTREAM_KAFKA__SASL_PASSWORD": "pw"})
    for conf in (consumer_config(cfg), producer_config(cfg)):
        assert conf["security.protocol"] == "SASL_SSL" and conf["sasl.mechanism"] == "SCRAM-SHA-512"
        assert conf["sasl.username"] == "svc" and conf["sasl.password"] == "pw"
        assert conf["ssl.ca.location"] == "/etc/ca.pem"
    assert producer_config(cfg)["enable.idempotence"] is True
    assert consumer_config(cfg)["enable.auto.commit"] is False


def test_redis_auth_and_tls_settings_reach_the_client():
    cfg = load_config(None, {"DRIFTSTREAM_REDIS__URL": "rediss://cache.example:6380/2",
                             "DRIFTSTREAM_REDIS__PASSWORD": "s3cret", "DRIFTSTREAM_REDIS__USERNAME": "ds",
                             "DRIFTSTREAM_REDIS__SSL_CA_CERTS": "/etc/redis-ca.pem"})
    client = make_redis(cfg)  # no connection is made until the first command
    kw = client.connection_pool.connection_kwargs
    assert kw["host"] == "cache.example" and kw["port"] == 6380 and kw["db"] == 2
    assert kw["password"] == "s3cret" and kw["username"] == "ds"
    assert kw["ssl_ca_certs"] == "/etc/redis-ca.pem"
    assert "SSL" in client.connection_pool.connection_class.__name__
