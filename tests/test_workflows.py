"""The Snakemake workflow and the Nextflow module, run for real on CPU: sharded and gathered equals one run.

Snakemake runs as a subprocess (skipped when it is not installed). Nextflow cannot be installed
here, so every `caduceus` command template of workflows/nextflow/main.nf is extracted, filled in
with example values and run through the real entry point: the module cannot drift from the CLI.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pysam
import pytest
from conftest import caduceus

from caduceus_cli import resources
from caduceus_cli.io.hdf5.layout import PROVENANCE_ATTRS
from caduceus_cli.io.hdf5.resume import partial_progress

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "workflows" / "snakemake" / "Snakefile"
NEXTFLOW = REPO / "workflows" / "nextflow" / "main.nf"
WINDOW = 64
SHARDS = 3
SCORE_OPTIONS = f"--window {WINDOW} --score llr --score emb-cos --emb-flank 8"
rng = np.random.default_rng(11)
CONTIGS = {"chr1": "".join(rng.choice(list("ACGT"), 420)), "chr2": "".join(rng.choice(list("ACGTn"), 230))}
BED = "chr1\t0\t150\tg1\t0\t+\nchr1\t100\t420\tg2\t0\t-\nchr2\t5\t200\tg3\t0\t.\nchr2\t0\t40\tg4\t0\t+\n"
# Provenance that names the command as typed: it differs between a shard run and a single run.
PROVENANCE_LINES = ("##caduceus_command=", "##caduceus_merge=")


def vcf_text() -> str:
    lines = [
        "##fileformat=VCFv4.2",
        *(f"##contig=<ID={name},length={len(seq)}>" for name, seq in CONTIGS.items()),
        "##contig=<ID=chrUn,length=100>",
        '##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
    ]
    for name, seq in CONTIGS.items():
        for pos in range(1, len(seq) + 1, 23):
            ref = seq[pos - 1].upper()
            alts = ",".join(b for b in "ACGT" if b != ref)[: 1 + pos % 3 * 2]  # some multi-allelic
            lines.append(f"{name}\t{pos}\tv{pos}\t{ref}\t{alts}\t50\tPASS\tDP={pos}")
        lines.append(f"{name}\t{len(seq)}\t.\t{seq[-1].upper()}\t<DEL>\t.\t.\t.")  # symbolic: flagged
    lines.append("chrUn\t5\t.\tA\tG\t.\t.\t.")  # contig missing from the FASTA: kept, flagged
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny_checkpoint) -> dict[str, Path]:
    """A tiny model (it records a 64-base training length) and example inputs."""
    folder = tmp_path_factory.mktemp("workflow_data")
    fasta = folder / "ref.fa"
    fasta.write_text("".join(f">{name}\n{seq}\n" for name, seq in CONTIGS.items()))
    (folder / "genes.bed").write_text(BED)
    (folder / "calls.vcf").write_text(vcf_text())
    model = tiny_checkpoint("ph", max_length=WINDOW)
    return {"fasta": fasta, "regions": folder / "genes.bed", "vcf": folder / "calls.vcf", "model": model}


def unsharded_outputs(data: dict[str, Path], folder: Path) -> dict[str, Path]:
    """The outputs of one unsharded run of each command, which the gathered ones must equal."""
    embeddings, scored = folder / "embeddings.h5", folder / "scored.vcf"
    assert caduceus(
        "embed", data["fasta"], "--regions", data["regions"], "--model", data["model"], "-q", "-o", embeddings
    ) == 0
    assert caduceus(
        "score-variants", data["vcf"], "--fasta", data["fasta"], "--model", data["model"],
        *SCORE_OPTIONS.split(), "-q", "-o", scored,
    ) == 0  # fmt: skip
    return {"embeddings": embeddings, "scored": scored}


@pytest.fixture(scope="module")
def single_run(data, tmp_path_factory) -> dict[str, Path]:
    return unsharded_outputs(data, tmp_path_factory.mktemp("single_run"))


@pytest.fixture(scope="module")
def example_data(tiny_checkpoint) -> dict[str, Path]:
    """The shipped example data (real sequence, genes on both strands), with a tiny model for speed."""
    model = tiny_checkpoint("ph", max_length=2048)
    examples = REPO / "examples"
    return {
        "fasta": examples / "example.fa",
        "regions": examples / "genes.bed",
        "vcf": examples / "example.vcf",
        "model": model,
    }


@pytest.fixture(scope="module")
def example_single_run(example_data, tmp_path_factory) -> dict[str, Path]:
    return unsharded_outputs(example_data, tmp_path_factory.mktemp("example_single_run"))


def hdf5_contents(path: Path) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """Every dataset by name, and the root attributes that are not provenance."""
    datasets: dict[str, np.ndarray] = {}

    def keep(name: str, item: object) -> None:
        if isinstance(item, h5py.Dataset):
            datasets[name] = item[()]

    with h5py.File(path, "r") as h5:
        h5.visititems(keep)
        attrs = {key: value for key, value in h5.attrs.items() if key not in PROVENANCE_ATTRS}
    return datasets, attrs


def assert_same_embeddings(gathered: Path, single: Path) -> None:
    got, want = hdf5_contents(gathered), hdf5_contents(single)
    assert sorted(got[0]) == sorted(want[0])
    assert "embeddings/3" in got[0]
    for name, values in want[0].items():
        np.testing.assert_array_equal(got[0][name], values, err_msg=name)
    assert got[1].keys() == want[1].keys()
    for key, value in want[1].items():
        np.testing.assert_array_equal(got[1][key], value, err_msg=key)


def vcf_lines(path: Path) -> tuple[list[str], list[str]]:
    """(header lines less provenance, record lines) of a plain or bgzipped VCF, as text."""
    with pysam.BGZFile(str(path), "rb") if path.suffix == ".gz" else open(path, "rb") as handle:
        lines = handle.read().decode().splitlines()
    header = [line for line in lines if line.startswith("#") and not line.startswith(PROVENANCE_LINES)]
    return header, [line for line in lines if not line.startswith("#")]


def assert_same_records(gathered: Path, single: Path) -> None:
    header, lines = vcf_lines(single)
    assert vcf_lines(gathered) == (header, lines)
    assert len(lines) > 20
    # the index answers a region query: the start of the first record's contig, up to its 5th record
    fields = [line.split("\t") for line in lines]
    contig, end = fields[0][0], int(fields[4][1])
    expected = [int(f[1]) for f in fields if f[0] == contig and int(f[1]) <= end]
    with pysam.VariantFile(str(gathered)) as indexed:
        assert [record.pos for record in indexed.fetch(contig, 0, end)] == expected


# ---------------------------------------------------------------------------------------------
# Snakemake


def test_snakemake_shards_and_gathers_to_the_single_run(data, single_run, tmp_path):
    pytest.importorskip("snakemake")
    config = {
        "fasta": data["fasta"],
        "regions": data["regions"],
        "vcf": data["vcf"],
        "model": data["model"],
        "shards": SHARDS,
        "outdir": "out",
        "threads": 1,  # two one-thread shard jobs at a time on --cores 2
        "score_options": SCORE_OPTIONS,
    }
    # `caduceus` and `python` (for the VCF joiner) must come from this environment
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", SNAKEFILE, "--cores", "2", "--directory", tmp_path,
         "--config", *(f"{key}={value}" for key, value in config.items())],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    out = tmp_path / "out"
    assert_same_embeddings(out / "embeddings.h5", single_run["embeddings"])
    assert_same_records(out / "scored.vcf.gz", single_run["scored"])
    assert (out / "scored.vcf.gz.tbi").is_file()
    assert not list((out / "shards").glob("*")), "shard files are temporary"
    assert "wrote" in (out / "logs" / "embed.2-of-3.log").read_text()


def test_snakemake_asks_for_a_gpu_per_shard_only_when_cuda_is_asked_for(data, tmp_path):
    """Dry runs: resources as the SLURM executor plugin reads them, and --device passed only when set."""
    pytest.importorskip("snakemake")

    def dry_run(*config: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "snakemake", "-s", SNAKEFILE, "-n", "-p", "--cores", "8", "--directory", tmp_path,
             "--config", f"fasta={data['fasta']}", f"vcf={data['vcf']}", "regions=", "shards=2", *config],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    def resources(plan: str) -> list[dict[str, str]]:
        lines = re.findall(r"^ *resources: (.*)$", plan, re.MULTILINE)
        return [dict(item.split("=", 1) for item in line.split(", ")) for line in lines]

    on_cpu = dry_run()
    assert not any("gpu" in job for job in resources(on_cpu))
    assert "--device" not in on_cpu and "--model" not in on_cpu and "--regions" not in on_cpu
    assert "--shard 2/2" in on_cpu
    on_gpu = dry_run("device=cuda", "gpu_model=a100", "threads=8")
    gpu_jobs = [job for job in resources(on_gpu) if "gpu" in job]
    assert [(job["gpu"], job["gpu_model"]) for job in gpu_jobs] == [("1", "a100")] * 4
    assert on_gpu.count("--device cuda") == 4 and on_gpu.count("--threads 8") == 4


def test_snakemake_asks_for_the_memory_of_the_model_and_window(data, tmp_path):
    """Shard jobs ask for what `caduceus_cli.resources` estimates for their model and window; merges for
    what merge needs, whatever the size of their inputs."""
    pytest.importorskip("snakemake")
    published = "kuleshov-group/caduceus-ph_seqlen-131k_d_model-256_n_layer-16"

    def memory(*config: str) -> dict[str, set[str]]:
        done = subprocess.run(
            [sys.executable, "-m", "snakemake", "-s", SNAKEFILE, "-n", "--cores", "8", "--directory", tmp_path,
             "--config", f"fasta={data['fasta']}", f"vcf={data['vcf']}", "regions=", "shards=2", *config],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        plan = re.findall(r"^rule (\w+):\n(?:.*\n)*? *resources: .*mem_mb=(\d+)", done.stdout, re.MULTILINE)
        by_rule: dict[str, set[str]] = {}
        for rule, mem_mb in plan:
            by_rule.setdefault(rule, set()).add(mem_mb)
        return by_rule

    shipped = memory()
    assert shipped["embed_shard"] == {str(resources.embed_memory_mb(None))}
    assert shipped["merge_embeddings"] == shipped["concat_scores"] == {"1000"}
    large = memory(f"model={published}", "embed_options=--window 131072 --batch-size 1", "score_options=-w 2048")
    size = resources.model_size(published)
    assert large["embed_shard"] == {str(resources.job_memory_mb(size, 131_072, 1))}
    assert large["score_shard"] == {str(resources.job_memory_mb(size, 2048))}


# ---------------------------------------------------------------------------------------------
# Nextflow


def nextflow_scripts() -> dict[str, str]:
    """The script template (the triple-quoted string after `script:`) of each process in main.nf."""
    text = NEXTFLOW.read_text()
    scripts = {}
    for match in re.finditer(r"^process (\w+) \{(.*?)^\}", text, re.MULTILINE | re.DOTALL):
        body = match.group(2)
        script = re.search(r'script:.*?"""(.*?)"""', body, re.DOTALL)
        assert script, f"process {match.group(1)} has no script template"
        scripts[match.group(1)] = script.group(1)
    return scripts


def filled(template: str, values: dict[str, object]) -> list[str]:
    """The template's command as argv: every ${...} replaced by its example value, continuations joined."""
    unknown = set(re.findall(r"\$\{([^}]*)\}", template)) - values.keys()
    assert not unknown, f"placeholders without example values (update this test with the module): {unknown}"
    command = re.sub(r"\$\{([^}]*)\}", lambda m: str(values[m.group(1)]), template.replace("\\\\\n", " "))
    return shlex.split(command)


def run_task(argv: list[str], workdir: Path, monkeypatch) -> None:
    """Run one task command (every task runs `caduceus`) in its work folder, through the entry point."""
    monkeypatch.chdir(workdir)
    assert argv[0] == "caduceus"
    assert caduceus(*argv[1:]) == 0, argv


def test_nextflow_module_commands_run_and_gather_to_the_single_run(
    example_data, example_single_run, tmp_path, monkeypatch
):
    """On the example data, as `nextflow run workflows/nextflow/main.nf` would run by default."""
    data, single_run = example_data, example_single_run
    scripts = nextflow_scripts()
    assert set(scripts) == {"CADUCEUS_EMBED", "CADUCEUS_MERGE", "CADUCEUS_SCORE", "CADUCEUS_CONCAT_VCF"}
    common = {
        "fasta": data["fasta"],
        "n_shards": SHARDS,
        "task.cpus": 1,
        "modelOptions()": f"--model {data['model']}",
        "moduleDir": NEXTFLOW.parent,
    }
    embed_shards, score_shards = [], []
    for shard in range(1, SHARDS + 1):
        values = {**common, "shard": shard, "regions_option": f"--regions {data['regions']}", "args": "-q"}
        run_task(filled(scripts["CADUCEUS_EMBED"], values), tmp_path, monkeypatch)
        embed_shards.append(tmp_path / f"embeddings.{shard}-of-{SHARDS}.h5")
        values = {**common, "shard": shard, "vcf": data["vcf"], "args": f"{SCORE_OPTIONS} -q"}
        run_task(filled(scripts["CADUCEUS_SCORE"], values), tmp_path, monkeypatch)
        score_shards.append(tmp_path / f"scored.{shard}-of-{SHARDS}.vcf.gz")
    # Nextflow's collect() gives no order: the gather steps must not depend on it
    gathered = {"shards": " ".join(map(str, reversed(embed_shards)))}
    run_task(filled(scripts["CADUCEUS_MERGE"], gathered), tmp_path, monkeypatch)
    gathered = {**common, "shards": " ".join(map(str, [score_shards[1], score_shards[2], score_shards[0]]))}
    run_task(filled(scripts["CADUCEUS_CONCAT_VCF"], gathered), tmp_path, monkeypatch)

    assert_same_embeddings(tmp_path / "embeddings.h5", single_run["embeddings"])
    assert_same_records(tmp_path / "scored.vcf.gz", single_run["scored"])


def test_workflow_defaults_are_the_example_data_and_the_shipped_model():
    config = dict(
        re.findall(r"^(\w+): *(\"[^\"]*\"|\S+)", (SNAKEFILE.parent / "config.yaml").read_text(), re.M)
    )
    params = dict(re.findall(r"^params\.(\w+) = '([^']*)'", NEXTFLOW.read_text(), re.M))
    for key in ("fasta", "regions", "vcf"):
        assert (REPO / config[key]).is_file() and config[key] == params[key]
    assert config["model"] == '""' and params["caduceus_model"] == ""


# ---------------------------------------------------------------------------------------------
# Snakemake and plain sbatch on a real SLURM cluster (tests/slurm.py: one node, no accounting)

PROFILE = REPO / "workflows" / "snakemake" / "profiles" / "slurm"


def slurm_env(slurm) -> dict[str, str]:
    """The cluster's client settings, and this environment's `caduceus` and `python` first on PATH."""
    return {**slurm.env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{slurm.env['PATH']}"}


def test_snakemake_through_slurm_with_the_shipped_profile_equals_the_single_run(slurm, data, single_run, tmp_path):
    """The documented command: every rule a SLURM job asking for its threads and memory, job states from
    squeue (sacct cannot answer on this cluster), nothing pending on a 2-CPU node."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    config = {
        "fasta": data["fasta"], "regions": data["regions"], "vcf": data["vcf"], "model": data["model"],
        "shards": SHARDS, "outdir": "out", "score_options": SCORE_OPTIONS,
    }  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", SNAKEFILE, "--workflow-profile", PROFILE, "--directory", tmp_path,
         "--slurm-init-seconds-before-status-checks", "2",
         "--config", *(f"{key}={value}" for key, value in config.items())],
        env=slurm_env(slurm), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "out"
    assert_same_embeddings(out / "embeddings.h5", single_run["embeddings"])
    assert_same_records(out / "scored.vcf.gz", single_run["scored"])
    assert "wrote" in (out / "logs" / "embed.2-of-3.log").read_text()


SHARD_SCRIPT = REPO / "workflows" / "slurm" / "shard.sbatch"


def submit(slurm, folder: Path, *args: object) -> str:
    """sbatch in `folder`; the job's id."""
    return slurm.run("sbatch", "--parsable", "--chdir", str(folder), *map(str, args)).stdout.strip().split(";")[0]


def test_a_job_array_of_shards_and_a_dependent_merge_equal_the_single_run(slurm, data, single_run, tmp_path):
    """workflows/slurm/shard.sbatch as docs/scaling.md submits it: --shard ${SLURM_ARRAY_TASK_ID}/N."""
    (tmp_path / "parts").mkdir()
    env_path = f"--export=ALL,PATH={slurm_env(slurm)['PATH']}"
    shards = submit(
        slurm, tmp_path, env_path, f"--array=1-{SHARDS}", SHARD_SCRIPT, SHARDS, "parts/part.%I.h5",
        "embed", data["fasta"], "--regions", data["regions"], "--model", data["model"], "-q",
    )  # fmt: skip
    merge = submit(
        slurm, tmp_path, env_path, f"--dependency=afterok:{shards}", "--output=merge.log",
        "--wrap", "caduceus merge parts/part.*.h5 -o all.h5",
    )  # fmt: skip
    assert slurm.wait(merge, timeout=300) == "COMPLETED", (tmp_path / "merge.log").read_text()
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == [f"part.{i}.h5" for i in range(1, SHARDS + 1)]
    assert_same_embeddings(tmp_path / "all.h5", single_run["embeddings"])


# A caduceus run whose every batch takes 0.4 s more, so a tiny model outlasts a one-minute limit
# (score-variants in chunks of 64 records, so a minute holds several).
SLOW_RUN = """
import sys, time
import caduceus_cli.engine as engine
import caduceus_cli.pipelines.variants as variants
from caduceus_cli.cli import main
variants.CHUNK_RECORDS = 64
real = engine.Engine._run_batch
def slow(self, *args):
    time.sleep(0.4)
    return real(self, *args)
engine.Engine._run_batch = slow
sys.argv = ["caduceus", *sys.argv[1:]]
main()
"""


def wait_for_line(log: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, f"{log}: no line {text!r} after {timeout:.0f} s"
        time.sleep(0.5)


def test_jobs_stopped_by_their_time_limit_save_their_work_and_the_reruns_complete_it(slurm, data, tmp_path):
    """A real `sbatch --time=1` (SLURM sends SIGTERM at the limit, SIGKILL 30 s later: KillWait) on an
    embed job and a score-variants job at once; each rerun with --resume equals an uninterrupted run."""
    bed = tmp_path / "many.bed"
    bed.write_text("".join(f"chr1\t{i}\t{i + 150}\tr{i}\n" for i in range(150)))
    # one window per position: 400 SNVs on a genome of their own, more than a minute and a half holds
    seq = "".join(np.random.default_rng(5).choice(list("ACGT"), 400))
    genome = tmp_path / "long.fa"
    genome.write_text(f">chr1\n{seq}\n")
    header = "##fileformat=VCFv4.2\n##contig=<ID=chr1,length=400>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    calls = tmp_path / "many.vcf"
    calls.write_text(header + "".join(
        f"chr1\t{pos}\t.\t{base}\t{'C' if base != 'C' else 'G'}\t.\t.\t.\n" for pos, base in enumerate(seq, 1)
    ))  # fmt: skip
    (tmp_path / "slow.py").write_text(SLOW_RUN)
    common = ["--model", data["model"], "--batch-size", 1, "-q"]
    runs = {
        "embed": ["embed", data["fasta"], "--regions", bed, *common, "-o", tmp_path / "out.h5"],
        "score": ["score-variants", calls, "--fasta", genome, "-w", WINDOW, *common, "-O", "z",
                  "--write-index", "-o", tmp_path / "out.vcf.gz"],
    }  # fmt: skip
    jobs = {
        name: submit(
            slurm, tmp_path, "--time=1", "--cpus-per-task=1", f"--output={name}.log",
            "--wrap", shlex.join([sys.executable, str(tmp_path / "slow.py"), *map(str, args)]),
        )  # fmt: skip
        for name, args in runs.items()
    }
    assert {name: slurm.wait(job, timeout=240) for name, job in jobs.items()} == {"embed": "TIMEOUT", "score": "TIMEOUT"}
    for name in jobs:  # SLURM may report the end state while a job still saves: its stop line comes last
        wait_for_line(tmp_path / f"{name}.log", "caduceus: terminated (SIGTERM)", timeout=60)

    partial = tmp_path / "out.h5.partial"
    done = partial_progress(partial)
    assert done is not None and 0 < done[0] < done[1] == 150
    assert (
        f"caduceus: terminated (SIGTERM); {done[0]} of 150 regions done saved in {partial}; "
        "rerun the same command with --resume to continue\n"
    ) in (tmp_path / "embed.log").read_text()
    with pysam.VariantFile(str(tmp_path / "out.vcf.gz.partial")) as partial_vcf:
        saved = list(partial_vcf)
    assert 0 < len(saved) < 400 and len(saved) % 64 == 0  # whole chunks of 64 records
    assert (
        f"caduceus: terminated (SIGTERM); {len(saved)} records done saved in {tmp_path / 'out.vcf.gz.partial'}; "
        "rerun the same command with --resume to continue\n"
    ) in (tmp_path / "score.log").read_text()

    for args in runs.values():
        assert caduceus(*args, "--resume") == 0
        assert caduceus(*args[:-1], str(args[-1]).replace("out.", "whole.")) == 0
    assert_same_embeddings(tmp_path / "out.h5", tmp_path / "whole.h5")
    assert_same_records(tmp_path / "out.vcf.gz", tmp_path / "whole.vcf.gz")


def test_a_cuda_shard_job_asks_slurm_for_one_gpu_and_gets_it(slurm, data, tmp_path):
    """The plugin submits device=cuda shard jobs with --gpus=1, 2 CPUs and the model's memory; the test
    node's GPU is a fake GRES, so the job runs with one GPU allocated and caduceus, finding no CUDA
    device behind it, fails with its one line."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    config = {"fasta": data["fasta"], "regions": data["regions"], "vcf": "", "model": data["model"], "shards": 1,
              "outdir": "out", "device": "cuda"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", SNAKEFILE, "--workflow-profile", PROFILE, "--directory", tmp_path,
         "--slurm-init-seconds-before-status-checks", "2", "--retries", "0",
         "--config", *(f"{key}={value}" for key, value in config.items())],
        env=slurm_env(slurm), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    log = tmp_path / "out" / "logs" / "embed.1-of-1.log"
    assert done.returncode == 1 and log.exists(), done.stderr[-3000:]
    assert "caduceus: error: --device cuda: no usable CUDA GPU" in log.read_text()
    job = re.search(r"SLURM run ID: \S+.*?external jobid '?(\d+)", done.stderr, re.DOTALL) or re.search(
        r"SLURM-job '(\d+)' failed", done.stderr
    )
    assert job, done.stderr[-2000:]
    shown = slurm.run("scontrol", "show", "job", job.group(1)).stdout
    memory = resources.embed_memory_mb(str(data["model"]))
    for asked in ("TresPerJob=gres:gpu:1", "JobState=FAILED", "NumCPUs=2", f"MinMemoryNode={memory}M"):
        assert asked in shown, shown
