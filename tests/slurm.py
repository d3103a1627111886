"""A single-node SLURM cluster for the tests, private to one test session: Debian's munged, slurmctld and
slurmd, started in the foreground by the session and stopped by it.

Everything is the session's own: a munge key and socket, free ports, state and spool folders, so
the cluster neither needs nor touches a system one. It has no accounting database (no slurmdbd,
`sacct` cannot answer), which is how many small clusters run. The node is this machine with its
real CPUs, a memory size a little below the machine's, and one fake GPU: SLURM only needs the
GRES file to be a character device, so a device node like /dev/null's stands in for /dev/nvidia0.

Its clients find it through SLURM_CONF. Snakemake's SLURM job-step plugin drops every SLURM_
variable but the allocation's before it calls `srun` inside a job, SLURM_CONF too, which a real
cluster does not notice (its slurm.conf is at the default path, which the test must not touch:
other sessions on this machine may run their own cluster); the cluster's PATH starts with an
`srun` that puts SLURM_CONF back.

`start_cluster` raises `Unavailable` with the reason when this machine cannot run one (not root,
packages missing, a daemon that does not come up); the fixture turns that into a skip.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scontrol", "sinfo", "srun")
NODE = "caduceus-node"
PARTITION = "debug"
READY_S = 30  # how long the daemons get to bring the node up


class Unavailable(Exception):
    """Why this machine cannot run the test cluster."""


@dataclass
class Cluster:
    """A running cluster: its folder, the environment its clients need (SLURM_CONF), its node's size."""

    folder: Path
    env: dict[str, str]
    cpus: int
    memory_mb: int
    processes: list[subprocess.Popen] = field(default_factory=list)

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        """A SLURM client command (sbatch, squeue, scontrol) against this cluster."""
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)}: exit {done.returncode}: {done.stderr.strip()}")
        return done

    def job_state(self, job: str) -> str:
        """The state SLURM gives job `job` (PENDING, RUNNING, COMPLETED, TIMEOUT, ...)."""
        shown = self.run("scontrol", "show", "job", job).stdout
        return shown.split("JobState=", 1)[1].split()[0]

    def wait(self, job: str, timeout: float) -> str:
        """Wait until job `job` has ended and its processes are gone (a job at its time limit has its end
        state while they still run, until KillWait); its final state."""
        deadline = time.monotonic() + timeout
        while (state := self.job_state(job)) in ("PENDING", "RUNNING", "CONFIGURING", "REQUEUED") or self._completing(job):
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job} still {state} after {timeout:.0f} s")
            time.sleep(0.5)
        return state

    def _completing(self, job: str) -> bool:
        shown = self.run("squeue", "--noheader", "--states=all", "--format=%t", "--jobs", job, check=False)
        return "CG" in shown.stdout.split()

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
        for process in reversed(self.processes):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def start_cluster(path_prefix: str = "caduceus-slurm-") -> Cluster:
    """Bring up munged, slurmctld and slurmd in a new folder under the system's temporary folder; the
    node is idle when this returns. Raises `Unavailable` (with what is missing) where it cannot."""
    _check_machine()
    # a folder of its own outside pytest's (which only root may enter): munged runs as munge
    folder = Path(_mkdtemp(path_prefix))
    cluster = Cluster(folder, {}, os.cpu_count() or 1, _memory_mb())
    try:
        munge_socket = _start_munge(cluster)
        conf = _write_config(cluster, munge_socket)
        path = f"{_srun_with_config(cluster, conf)}{os.pathsep}{os.environ.get('PATH', '')}"
        cluster.env = {**os.environ, "SLURM_CONF": str(conf), "PATH": path}
        cluster.processes.append(_daemon(cluster, "slurmctld", "-D", "-i", "-f", str(conf)))
        cluster.processes.append(_daemon(cluster, "slurmd", "-D", "-N", NODE, "-f", str(conf)))
        _wait_until_idle(cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _check_machine() -> None:
    if os.geteuid() != 0:
        raise Unavailable("starting SLURM's daemons needs root")
    missing = [name for name in (*DAEMONS, *CLIENTS, "mungekey") if shutil.which(name, path=_sbin_path()) is None]
    if missing:
        raise Unavailable(f"SLURM or munge not installed (missing {', '.join(missing)}; .ci/run installs them)")
    try:
        pwd.getpwnam("munge")
    except KeyError:
        raise Unavailable("no munge user (Debian's munge package makes it)") from None


def _sbin_path() -> str:
    return f"{os.environ.get('PATH', '')}{os.pathsep}/usr/sbin{os.pathsep}/sbin"


def _mkdtemp(prefix: str) -> str:
    import tempfile

    folder = tempfile.mkdtemp(prefix=prefix)
    os.chmod(folder, 0o755)
    return folder


def _memory_mb() -> int:
    """The node's RealMemory: 90% of the machine's (slurmd refuses a node larger than it is)."""
    with open("/proc/meminfo") as meminfo:
        total_kb = int(next(line for line in meminfo if line.startswith("MemTotal:")).split()[1])
    return int(total_kb / 1024 * 0.9)


def _start_munge(cluster: Cluster) -> Path:
    """munged with a key of its own, run as the munge user (it refuses files others could change)."""
    munge = cluster.folder / "munge"
    munge.mkdir(mode=0o755)
    owner = pwd.getpwnam("munge")
    os.chown(munge, owner.pw_uid, owner.pw_gid)
    key = munge / "munge.key"
    subprocess.run(["runuser", "-u", "munge", "--", _which("mungekey"), "--create", "--keyfile", str(key)],
                   check=True, capture_output=True)  # fmt: skip
    socket_path = munge / "munge.socket"
    cluster.processes.append(
        _daemon(
            cluster, "munged", "--foreground", "--key-file", str(key), "--socket", str(socket_path),
            "--pid-file", str(munge / "munged.pid"), "--log-file", str(munge / "munged.log"),
            "--seed-file", str(munge / "munged.seed"), user="munge",
        )  # fmt: skip
    )
    _wait_for(lambda: socket_path.exists(), "munged did not open its socket", cluster)
    return socket_path


def _write_config(cluster: Cluster, munge_socket: Path) -> Path:
    folder = cluster.folder
    for name in ("state", "spool", "log"):
        (folder / name).mkdir()
    gpu = folder / "nvidia0"
    os.mknod(gpu, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a character device, as SLURM requires
    host = socket.gethostname().split(".")[0]
    ctld_port, slurmd_port = _free_port(), _free_port()
    conf = folder / "slurm.conf"
    conf.write_text(
        "\n".join(
            [
                "ClusterName=caduceus-test",
                f"SlurmctldHost={host}(127.0.0.1)",
                f"SlurmctldPort={ctld_port}",
                f"SlurmdPort={slurmd_port}",
                "SlurmUser=root",
                "AuthType=auth/munge",
                "CredType=cred/munge",
                f"AuthInfo=socket={munge_socket}",
                f"StateSaveLocation={folder / 'state'}",
                f"SlurmdSpoolDir={folder / 'spool'}",
                f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
                f"SlurmdPidFile={folder / 'slurmd.pid'}",
                f"SlurmctldLogFile={folder / 'log' / 'slurmctld.log'}",
                f"SlurmdLogFile={folder / 'log' / 'slurmd.log'}",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core_Memory",
                "JobCompType=jobcomp/filetxt",
                f"JobCompLoc={folder / 'log' / 'jobcomp.txt'}",
                "AccountingStorageType=accounting_storage/none",
                "MpiDefault=none",
                # a job that asks for no memory gets this much per CPU, not the whole node
                "DefMemPerCPU=1000",
                "ReturnToService=2",
                "GresTypes=gpu",
                # squeue answers for a finished job this long: what Snakemake's squeue status needs
                "MinJobAge=300",
                f"NodeName={NODE} NodeHostname={host} NodeAddr=127.0.0.1 CPUs={cluster.cpus} "
                f"RealMemory={cluster.memory_mb} Gres=gpu:1 State=UNKNOWN",
                f"PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
                "",
            ]
        )
    )
    (folder / "gres.conf").write_text(f"NodeName={NODE} Name=gpu File={gpu}\n")
    return conf


def _srun_with_config(cluster: Cluster, conf: Path) -> Path:
    """A folder holding an `srun` that runs the real one with this cluster's SLURM_CONF (module docstring)."""
    folder = cluster.folder / "bin"
    folder.mkdir()
    srun = folder / "srun"
    srun.write_text(f'#!/bin/sh\nSLURM_CONF={conf} exec {_which("srun")} "$@"\n')
    srun.chmod(0o755)
    return folder


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _which(name: str) -> str:
    found = shutil.which(name, path=_sbin_path())
    assert found is not None
    return found


def _daemon(cluster: Cluster, name: str, *args: str, user: str | None = None) -> subprocess.Popen:
    command = [_which(name), *args]
    if user is not None:
        command = ["runuser", "-u", user, "--", *command]
    log = open(cluster.folder / f"{name}.out", "w")  # noqa: SIM115 (the daemon's, closed with the process)
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=cluster.env or None)


def _wait_until_idle(cluster: Cluster) -> None:
    def idle() -> bool:
        shown = cluster.run("sinfo", "--noheader", "--format=%t", check=False)
        return shown.returncode == 0 and shown.stdout.strip() == "idle"

    _wait_for(idle, "the node did not become idle", cluster)


def _wait_for(ready, failure: str, cluster: Cluster) -> None:
    deadline = time.monotonic() + READY_S
    while not ready():
        for process in cluster.processes:
            if process.poll() is not None:
                raise Unavailable(f"{failure}: {Path(process.args[-1]).name} exited {process.returncode}; "
                                  f"{_tail(cluster)}")  # fmt: skip
        if time.monotonic() > deadline:
            raise Unavailable(f"{failure} in {READY_S} s; {_tail(cluster)}")
        time.sleep(0.2)


def _tail(cluster: Cluster) -> str:
    """The last lines the daemons wrote, for the skip reason."""
    lines = []
    for log in sorted(cluster.folder.glob("*.out")) + sorted((cluster.folder / "log").glob("*.log")):
        text = log.read_text(errors="replace").strip().splitlines()[-2:]
        lines += [f"{log.name}: {line}" for line in text]
    return " | ".join(lines) or "no daemon output"
