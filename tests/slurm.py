"""A real one-node Slurm cluster for the tests: Debian's slurmctld, slurmd and munge, started as
root without systemd (about 1.3 s to an idle node), configured by a file of its own that the
``SLURM_CONF`` variable names, and stopped with every job it ran.

It needs the Debian packages ``slurmctld slurmd slurm-client munge`` (``.ci/run`` installs
them; :func:`ensure_installed` tries ``apt-get`` where they are missing) and root.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from process_groups import end_group

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
MUNGE_KEY = Path("/etc/munge/munge.key")


def ensure_installed() -> str | None:
    """None once Slurm and munge are here (installing them with apt-get if needed), else why not."""
    if all(shutil.which(tool) for tool in ("slurmctld", "slurmd", "sbatch", "munged")):
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "Slurm is not installed and apt-get cannot install it here (needs root and apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, timeout=600)
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0:
        return f"apt-get could not install {' '.join(PACKAGES)}: {done.stderr.strip()[-500:]}"
    return None


def _free_memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return 4096


CONFIG = """\
ClusterName=ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=10
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,sched_interval=2
ReturnToService=2
KillWait=5
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
MailProg=/bin/true
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


class SlurmCluster:
    """A one-node Slurm cluster in ``root``; ``env`` is the environment its commands need."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.config)}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.munged: int | None = None

    def run(self, *command: str, check: bool = True, timeout: float = 60) -> str:
        done = subprocess.run(command, capture_output=True, text=True, env=self.env, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()}")
        return done.stdout

    def _start_munge(self) -> None:
        user = pwd.getpwnam("munge")
        if not MUNGE_KEY.exists():
            subprocess.run(["mungekey", "--create", "--keyfile", str(MUNGE_KEY)], check=True, capture_output=True)
        os.chown(MUNGE_KEY, user.pw_uid, user.pw_gid)
        os.chmod(MUNGE_KEY, 0o400)
        run_dir = Path("/run/munge")
        run_dir.mkdir(parents=True, exist_ok=True)
        os.chown(run_dir, user.pw_uid, user.pw_gid)
        os.chmod(run_dir, 0o755)
        with contextlib.suppress(subprocess.CalledProcessError):
            subprocess.run(["munge", "-n"], check=True, capture_output=True, timeout=10)
            return  # a munged runs already (a test before this one started it)
        subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged", "--force"], check=True,
                       capture_output=True, timeout=30)
        pid_file = run_dir / "munged.pid"
        deadline = time.monotonic() + 10
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.munged = int(pid_file.read_text()) if pid_file.exists() else None

    def start(self) -> None:
        for folder in ("state", "spool"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        ports = _free_ports(2)
        self.config.write_text(CONFIG.format(root=self.root, cpus=os.cpu_count() or 1,
                                             memory=max(1000, int(_free_memory_mb() * 0.8)),
                                             ctld_port=ports[0], slurmd_port=ports[1]))
        self._start_munge()
        for command in (["slurmctld", "-D", "-i", "-f", str(self.config)],
                        ["slurmd", "-D", "-N", "localhost", "-f", str(self.config)]):
            log = open(self.root / f"{command[0]}.out", "wb")  # noqa: SIM115 - the daemon's, closed with it
            self.procs.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                               start_new_session=True))
        deadline = time.monotonic() + 60
        state = ""
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}: {self.logs()}")
            state = self.run("sinfo", "-h", "-n", "localhost", "-o", "%T", check=False).strip()
            if state == "idle":
                return
            time.sleep(0.1)
        raise RuntimeError(f"the Slurm node did not become idle (state {state!r}): {self.logs()}")

    def logs(self) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-2000:]}"
                         for path in sorted(self.root.glob("*.log")) + sorted(self.root.glob("*.out")))

    def jobs(self) -> list[tuple[str, str, str]]:
        """The jobs in the queue: (id, name, state)."""
        out = self.run("squeue", "-h", "-o", "%i|%j|%T", check=False)
        return [tuple(line.split("|")) for line in out.splitlines() if line.strip()]  # type: ignore[misc]

    def stop(self) -> None:
        """Cancel every job, wait for the queue to empty (job processes outlive slurmd otherwise), then
        end slurmd, slurmctld and the munged this cluster started."""
        with contextlib.suppress(Exception):
            self.run("scancel", "--user=root", check=False)
            deadline = time.monotonic() + 30
            while self.jobs() and time.monotonic() < deadline:
                time.sleep(0.2)
        for proc in reversed(self.procs):
            end_group(proc, grace=15)
        if self.munged is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.munged, signal.SIGTERM)


def _free_ports(count: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@contextlib.contextmanager
def slurm_cluster(root: Path) -> Iterator[SlurmCluster]:
    """A running one-node Slurm cluster, stopped at the end whatever happens."""
    cluster = SlurmCluster(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
