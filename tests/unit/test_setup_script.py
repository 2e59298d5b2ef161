"""The set-up of the README's two commands on a bare machine: ``deploy/local/stack.sh install`` and
``deploy/local/dev.sh prereqs`` run with Java, Maven, Redis and Python's venv hidden from ``PATH``.

``PATH`` holds only the basic tools the scripts use plus stub ``apt-get``, ``apt-cache``, ``id`` and (when a
case has it) ``sudo`` that record their calls; the stub ``apt-get install`` "installs" a package by putting stub
commands on ``PATH`` (a ``java`` that prints a version, an ``mvn`` that writes a Kafka jar where it is told),
so the scripts' checks after the install run for real. Nothing is installed on this machine.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STACK = REPO / "deploy" / "local" / "stack.sh"
DEV = REPO / "deploy" / "local" / "dev.sh"
KAFKA_VERSION = "4.1.1"

# what the scripts need besides the tools under test (kept from the real machine)
BASIC_TOOLS = ("bash", "sed", "awk", "head", "tail", "cat", "cut", "dirname", "mkdir", "rm", "ls", "touch", "grep",
               "sleep", "seq", "tr")

# what the stub `apt-get install` puts on PATH for each package
PACKAGE_COMMANDS = {
    "openjdk-17-jre-headless": {"java": "java17"},
    "openjdk-21-jre-headless": {"java": "java21"},
    "maven": {"mvn": "mvn"},
    "redis-server": {"redis-server": "redis", "redis-cli": "redis"},
    "prometheus": {"promtool": "plain"},
    "python3-venv": {},  # makes the stub python3 find ensurepip
}

STUBS = {
    "java17": 'echo \'openjdk version "17.0.15" 2025-04-15\' >&2\n',
    "java21": 'echo \'openjdk version "21.0.8" 2025-07-15\' >&2\n',
    "java8": 'echo \'openjdk version "1.8.0_402"\' >&2\n',
    "mvn": 'echo "mvn $*" >> "$STUB_LOG"\n'
           'for a in "$@"; do case "$a" in -DoutputDirectory=*) out="${a#-DoutputDirectory=}";; esac; done\n'
           f'mkdir -p "$out" && touch "$out/kafka_2.13-{KAFKA_VERSION}.jar"\n',
    "redis": 'echo "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64"\n',
    "plain": "exit 0\n",
}


@dataclass
class Machine:
    """A bare machine as far as the scripts can tell: a PATH of basic tools and recording stubs."""

    root: Path
    uid: int = 0
    sudo: bool = False
    apt: bool = True
    apt_known: tuple[str, ...] = ("openjdk-17-jre-headless", "openjdk-21-jre-headless", "maven", "redis-server",
                                  "prometheus", "python3-venv")
    apt_install_fails: bool = False

    def __post_init__(self) -> None:
        self.sys_bin = self.root / "sysbin"
        self.stub_bin = self.root / "stubs"
        self.installed = self.root / "installed"
        self.cache = self.root / "cache"
        for d in (self.sys_bin, self.stub_bin, self.installed, self.cache):
            d.mkdir(parents=True)
        self.log = self.root / "calls.log"
        self.log.write_text("")
        for tool in BASIC_TOOLS:
            found = shutil.which(tool)
            assert found, f"{tool} is needed to run the set-up scripts"
            (self.sys_bin / tool).symlink_to(found)
        self._stub("id", f'u="${{STUB_UID:-{self.uid}}}"; [ "${{1:-}}" = "-u" ] && echo "$u" || echo "uid=$u"\n')
        if self.sudo:
            self._stub("sudo", 'echo "sudo $*" >> "$STUB_LOG"\nSTUB_UID=0 exec "$@"\n')
        if self.apt:
            installs = "\n".join(
                f"      {pkg}) " + "".join(f'install_cmd {cmd} {kind}; ' for cmd, kind in cmds.items())
                + (f'touch "{self.root}/venv-installed"; ' if pkg == "python3-venv" else "") + ";;"
                for pkg, cmds in PACKAGE_COMMANDS.items())
            self._stub("apt-get", f"""echo "uid=$(id -u) apt-get $*" >> "$STUB_LOG"
install_cmd() {{ {shutil.which("cp")} "{self.root}/kinds/$2" "{self.installed}/$1"; {shutil.which("chmod")} +x "{self.installed}/$1"; }}
[ "$1" = install ] || exit 0
[ "$(id -u)" -eq 0 ] || {{ echo "E: could not open lock file (are you root?)" >&2; exit 100; }}
{'echo "E: Unable to fetch some archives" >&2; exit 100' if self.apt_install_fails else ''}
for p in "$@"; do
  case "$p" in
{installs}
    -*|install) ;;
    *) echo "E: Unable to locate package $p" >&2; exit 100 ;;
  esac
done
""")
            known = " ".join(self.apt_known)
            self._stub("apt-cache", f'[ "$1" = show ] || exit 0\nfor k in {known}; do '
                                    '[ "${@: -1}" = "$k" ] && exit 0; done\nexit 100\n')
        kinds = self.root / "kinds"
        kinds.mkdir()
        for kind, body in STUBS.items():
            (kinds / kind).write_text("#!/bin/bash\n" + body)
        # python3 is the real one, except that its venv module exists only once python3-venv is "installed"
        self._stub("python3", f"""for a in "$@"; do case "$a" in *ensurepip*) [ -f "{self.root}/venv-installed" ]; exit $?;; esac; done
exec "{sys.executable}" "$@"
""")

    def _stub(self, name: str, body: str, where: Path | None = None) -> None:
        path = (where or self.stub_bin) / name
        path.write_text("#!/bin/bash\n" + body)
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    def has(self, command: str, kind: str) -> None:
        """``command`` is already on the machine (as the stub of that kind)."""
        shutil.copy(self.root / "kinds" / kind, self.installed / command)
        (self.installed / command).chmod(0o755)

    def cache_jars(self) -> None:
        libs = self.cache / f"kafka-{KAFKA_VERSION}" / "libs"
        libs.mkdir(parents=True)
        (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").touch()
        (libs / ".complete").touch()

    def run(self, *cmd: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": f"{self.stub_bin}:{self.installed}:{self.sys_bin}", "HOME": str(self.root),
               "STUB_LOG": str(self.log), "DRIFTSTREAM_CACHE": str(self.cache),
               "DRIFTSTREAM_VENV": str(self.root / "no-venv")}
        return subprocess.run([shutil.which("bash"), *cmd], env=env, capture_output=True, text=True, timeout=60,
                              cwd=str(self.root))

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines()


@pytest.fixture()
def machine(tmp_path):
    def make(**kw) -> Machine:
        return Machine(tmp_path / f"m{len(list(tmp_path.iterdir()))}", **kw)

    return make


def apt_installs(m: Machine) -> list[list[str]]:
    return [c.split(" install ", 1)[1].split() for c in m.calls() if " apt-get install " in c]


def test_bare_machine_as_root_installs_java_maven_redis_in_one_apt_run_then_fetches_the_jars(machine):
    m = machine(uid=0)
    r = m.run(str(STACK), "install")
    assert r.returncode == 0, r.stderr
    calls = m.calls()
    assert [c for c in calls if "apt-get update" in c] == ["uid=0 apt-get update -qq"]
    (pkgs,) = apt_installs(m)
    assert [p for p in pkgs if not p.startswith("-")] == ["openjdk-21-jre-headless", "maven", "redis-server"]
    assert "-y" in pkgs and not any(c.startswith("sudo") for c in calls)
    # then Maven fetched the jars into the cache, with the java it installed
    assert any(c.startswith("mvn ") and "copy-dependencies" in c for c in calls)
    assert (m.cache / f"kafka-{KAFKA_VERSION}" / "libs" / ".complete").exists()
    assert "missing: Java 17+" in r.stderr and "redis-server present: 7.0.15" in r.stderr


def test_not_root_installs_through_sudo(machine):
    m = machine(uid=1000, sudo=True, apt_known=("openjdk-17-jre-headless",))
    r = m.run(str(STACK), "install")
    assert r.returncode == 0, r.stderr
    calls = m.calls()
    assert "sudo apt-get update -qq" in calls
    installs = [c for c in calls if "apt-get install" in c]
    assert installs[0].startswith("sudo apt-get install") and installs[1].startswith("uid=0 apt-get install")
    assert [p for p in apt_installs(m)[0] if not p.startswith("-")] == ["openjdk-17-jre-headless", "maven",
                                                                        "redis-server"]


def test_not_root_without_sudo_says_exactly_what_to_install(machine):
    m = machine(uid=1000, sudo=False, apt_known=("openjdk-17-jre-headless",))
    r = m.run(str(STACK), "install")
    assert r.returncode == 1
    assert "not root and sudo is not available" in r.stderr
    assert "apt-get update && apt-get install -y openjdk-17-jre-headless maven redis-server" in r.stderr
    assert not any("apt-get" in c for c in m.calls())  # nothing was tried


def test_no_package_manager_names_every_missing_tool(machine):
    m = machine(apt=False)
    r = m.run(str(STACK), "install")
    assert r.returncode == 1
    for what in ("Java 17+ (java)", "Maven (mvn)", "Redis 7+ (redis-server, redis-cli)", "no apt-get here"):
        assert what in r.stderr, r.stderr
    assert m.calls() == []


def test_nothing_missing_installs_nothing_and_cached_jars_need_no_maven(machine):
    m = machine(uid=0)
    m.has("java", "java17")
    m.has("redis-server", "redis")
    m.has("redis-cli", "redis")
    m.cache_jars()  # Maven is not there, and not needed
    r = m.run(str(STACK), "install")
    assert r.returncode == 0, r.stderr
    assert m.calls() == []
    assert "jars cached" in r.stderr


def test_too_old_java_is_replaced(machine):
    m = machine(uid=0)
    m.has("java", "java8")
    m.has("mvn", "mvn")
    m.has("redis-server", "redis")
    m.has("redis-cli", "redis")
    r = m.run(str(STACK), "install")
    assert r.returncode == 0, r.stderr
    assert "Java 8" in r.stderr
    assert [p for p in apt_installs(m)[0] if not p.startswith("-")] == ["openjdk-21-jre-headless"]


def test_failed_apt_install_says_what_to_install_by_hand(machine):
    m = machine(uid=0, apt_install_fails=True)
    r = m.run(str(STACK), "install")
    assert r.returncode == 1
    assert "install these by hand: Java 17+ (java), for the Kafka broker; Maven (mvn)" in r.stderr


def test_dev_prereqs_adds_python_venv_with_one_apt_update(machine):
    m = machine(uid=0)
    r = m.run(str(DEV), "prereqs")
    assert r.returncode == 0, r.stderr
    assert sum("apt-get update" in c for c in m.calls()) == 1  # dev.sh's run, reused by stack.sh's
    first, second = apt_installs(m)
    assert [p for p in first if not p.startswith("-")] == ["python3-venv"]
    assert [p for p in second if not p.startswith("-")] == ["openjdk-21-jre-headless", "maven", "redis-server"]


def test_dev_prereqs_without_root_lists_python_venv_too(machine):
    m = machine(uid=1000)
    r = m.run(str(DEV), "prereqs")
    assert r.returncode == 1
    assert "the venv module of Python (python3-venv)" in r.stderr
    assert "apt-get install -y python3-venv" in r.stderr
