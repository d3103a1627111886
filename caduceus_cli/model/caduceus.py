"""Caduceus for masked language modelling: PH (plain) and PS (reverse-complement parameter sharing).

Module and parameter names mirror the original implementation, so the published
`model.safetensors` loads by name (see load.py for the tied tensors it leaves out).

    ids (B, L) -> embeddings -> n_layer x [add residual, norm, BiMamba] -> add, final norm -> hidden
    hidden (B, L, C) -> tied LM head -> logits (B, L, V)

C = d for PH; for PS the residual stream carries a forward half and a reverse-complement half
(C = 2d), the RC half stored flipped back into forward coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from caduceus_cli.model import compiled
from caduceus_cli.model.config import CaduceusConfig
from caduceus_cli.model.scan import selective_scan
from caduceus_cli.tokens import CADUCEUS, Tokenizer

RC_MODES = ("auto", "none", "average")  # reverse-complement handling of embed() and logits_conjoined()

@dataclass
class ModelOutput:
    logits: torch.Tensor  # (B, L, V), float32 (float64 for a float64 model)
    hidden: torch.Tensor  # (B, L, C), after the final norm
    hidden_states: tuple[torch.Tensor, ...] | None = None  # embedding, mixer outputs..., hidden


def flip_lc(x: torch.Tensor) -> torch.Tensor:
    """Reverse length and channels: the RC of a (B, L, C) tensor of strand-aware features."""
    return x.flip(1, 2)


def make_norm(config: CaduceusConfig) -> nn.Module:
    if config.rms_norm:
        return RMSNorm(config.d_model, config.norm_epsilon)
    return nn.LayerNorm(config.d_model, eps=config.norm_epsilon)


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))


def normalize(norm: nn.Module, x: torch.Tensor, out_dtype: torch.dtype, flip: bool = False) -> torch.Tensor:
    """Apply an RMSNorm or LayerNorm in at least float32; `flip` reverses its weight (and bias),
    which is how PS normalises the RC half."""
    compute = torch.promote_types(x.dtype, torch.float32)
    x = x.to(compute)
    weight = norm.weight.to(compute)
    weight = weight.flip(0) if flip else weight
    if isinstance(norm, RMSNorm):
        out = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps) * weight
    else:
        bias = norm.bias.to(compute)
        out = F.layer_norm(x, (x.shape[-1],), weight, bias.flip(0) if flip else bias, norm.eps)
    return out.to(out_dtype)


class Mamba(nn.Module):
    """One direction of a BiMamba: causal conv, selective SSM, gate. The reverse direction of a
    weight-tied block has no in_proj/out_proj of its own (`with_projections=False`)."""

    def __init__(self, config: CaduceusConfig, with_projections: bool = True):
        super().__init__()
        d, inner, rank, n = config.d_model, config.d_inner, config.dt_rank, config.d_state
        if with_projections:
            self.in_proj = nn.Linear(d, 2 * inner, bias=config.proj_bias)
        self.conv1d = nn.Conv1d(
            inner, inner, config.d_conv, groups=inner, padding=config.d_conv - 1, bias=config.conv_bias
        )
        self.x_proj = nn.Linear(inner, rank + 2 * n, bias=False)
        self.dt_proj = nn.Linear(rank, inner, bias=True)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(inner, 1))
        self.D = nn.Parameter(torch.ones(inner))
        if with_projections:
            self.out_proj = nn.Linear(inner, d, bias=config.proj_bias)
        self.rank, self.d_state = rank, n

    def causal_conv(self, x: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        """Depthwise causal conv along L: out[t] = bias + sum_k w[k] * x[t - (K-1) + k], zeros before the start;
        `reverse` is the same conv run from the end (x[t + (K-1) - k], zeros after the end), which is the
        causal conv of the flipped sequence, flipped back. Written as K shifted multiply-adds on (B, L, E):
        no transposes, and fast in every dtype on the CPU."""
        kernel = self.conv1d.weight[:, 0, :]  # (E, K)
        size, length = kernel.shape[1], x.shape[1]
        if reverse:
            padded = F.pad(x, (0, 0, 0, size - 1))
            out = sum(padded[:, size - 1 - k : size - 1 - k + length] * kernel[:, k] for k in range(size))
        else:
            padded = F.pad(x, (0, 0, size - 1, 0))
            out = sum(padded[:, k : k + length] * kernel[:, k] for k in range(size))
        return out if self.conv1d.bias is None else out + self.conv1d.bias

    def gated_ssm(self, xz: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        """xz: (B, L, 2E) in_proj output -> gated SSM output y * silu(z): (B, L, E), before out_proj.
        `reverse` runs this direction from the last position to the first, in forward coordinates
        (equal to running it on the flipped sequence and flipping the result, without the copies)."""
        x, z = xz.chunk(2, dim=-1)
        if compiled.serves(xz):  # one pass over x instead of 2K + 1
            x = compiled.conv_silu(xz, self.conv1d.weight[:, 0, :], self.conv1d.bias, reverse)
        else:
            x = F.silu(self.causal_conv(x, reverse))
        dt_low, B, C = self.x_proj(x).split([self.rank, self.d_state, self.d_state], dim=-1)
        scan_dtype = torch.promote_types(x.dtype, torch.float32)
        A = -torch.exp(self.A_log.to(scan_dtype))  # (E, N)
        # the dt bias, softplus and gate are applied inside the scan, as in mamba-ssm's kernel
        dt = F.linear(dt_low, self.dt_proj.weight)
        return selective_scan(x, dt, A, B, C, self.D.to(scan_dtype), self.dt_proj.bias, z, reverse)


class BiMamba(nn.Module):
    """out = M_fwd(h) (+ or *) flipL(M_rev(flipL(h))); M_rev shares M_fwd's in/out projections when tied."""

    def __init__(self, config: CaduceusConfig):
        super().__init__()
        self.tied = config.bidirectional_weight_tie
        self.strategy = config.bidirectional_strategy
        self.bidirectional = config.bidirectional
        self.mamba_fwd = Mamba(config)
        if self.bidirectional:
            self.mamba_rev = Mamba(config, with_projections=not self.tied)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        fwd = self.mamba_fwd
        xz = fwd.in_proj(h)
        y_fwd = fwd.gated_ssm(xz)
        if not self.bidirectional:
            return fwd.out_proj(y_fwd)
        rev = self.mamba_rev
        # The reverse direction runs on the flipped sequence; its projections are per position, so it
        # runs in forward coordinates instead (no flips), with tied weights on the forward direction's
        # in_proj output, and one out_proj serves the sum of both directions.
        y_rev = rev.gated_ssm(xz if self.tied else rev.in_proj(h), reverse=True)
        rev_out_proj = fwd.out_proj if self.tied else rev.out_proj
        if self.strategy == "add" and self.tied:
            out = fwd.out_proj(y_fwd + y_rev)
            return out if fwd.out_proj.bias is None else out + fwd.out_proj.bias
        if self.strategy == "add":
            return fwd.out_proj(y_fwd) + rev_out_proj(y_rev)
        return fwd.out_proj(y_fwd) * rev_out_proj(y_rev)


class RCPSMixer(nn.Module):
    """PS: the shared BiMamba on the forward half and, reverse-complemented, on the RC half."""

    def __init__(self, config: CaduceusConfig):
        super().__init__()
        self.submodule = BiMamba(config)

    def forward(self, fwd: torch.Tensor, rc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch = fwd.shape[0]
        out = self.submodule(torch.cat([fwd, flip_lc(rc)], dim=0))  # one call for both strands
        return out[:batch], flip_lc(out[batch:])


class Block(nn.Module):
    def __init__(self, config: CaduceusConfig):
        super().__init__()
        self.norm = make_norm(config)
        self.mixer = RCPSMixer(config) if config.rcps else BiMamba(config)


class RCPSEmbedding(nn.Module):
    def __init__(self, config: CaduceusConfig):
        super().__init__()
        self.embedding = nn.Embedding(config.padded_vocab_size, config.d_model)
        self.register_buffer("complement_map", torch.tensor(config.complement_list()))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, L) -> (B, L, 2d): forward-strand embedding and the channel-flipped complement's."""
        fwd = self.embedding(ids)
        rc = self.embedding(self.complement_map[ids]).flip(-1)
        return torch.cat([fwd, rc], dim=-1)


class Embeddings(nn.Module):
    def __init__(self, config: CaduceusConfig):
        super().__init__()
        if config.rcps:
            self.word_embeddings = RCPSEmbedding(config)
        else:
            self.word_embeddings = nn.Embedding(config.padded_vocab_size, config.d_model)


class Backbone(nn.Module):
    def __init__(self, config: CaduceusConfig):
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm_f = make_norm(config)

    def forward(self, ids: torch.Tensor, output_hidden_states: bool = False):
        """(B, L) ids -> final hidden (B, L, C) and, if asked, the per-layer states of the original code."""
        config = self.config
        h = self.embeddings.word_embeddings(ids)
        dtype = h.dtype
        res_dtype = torch.promote_types(dtype, torch.float32) if config.residual_in_fp32 else dtype
        states = [h] if output_hidden_states else None
        res = None
        for layer in self.layers:
            summed = (h if res is None else h + res).to(res_dtype)
            if config.rcps:
                h, res = self._rcps_layer(layer, summed, dtype)
            else:
                res = summed
                h = layer.mixer(normalize(layer.norm, summed, dtype))
            if states is not None:
                states.append(h)
        summed = (h if res is None else h + res).to(res_dtype)
        if config.rcps:
            d = config.d_model
            hidden = torch.cat(
                [
                    normalize(self.norm_f, summed[..., :d], dtype),
                    normalize(self.norm_f, summed[..., d:], dtype, flip=True),
                ],
                dim=-1,
            )
        else:
            hidden = normalize(self.norm_f, summed, dtype)
        if states is not None:
            states[-1] = hidden  # the original reports the final normed hidden, not the last mixer output
        return hidden, states

    def _rcps_layer(self, layer: Block, summed: torch.Tensor, dtype: torch.dtype):
        """PS block. The published (fused add+norm) path swaps the two halves of the residual and
        normalises the RC half as the forward input; the unfused path does not swap."""
        d = self.config.d_model
        first, second = summed[..., :d], summed[..., d:]
        if self.config.fused_add_norm:
            first, second = second, first
        res = torch.cat([first, second], dim=-1)
        fwd, rc = layer.mixer(
            normalize(layer.norm, first, dtype), normalize(layer.norm, second, dtype, flip=True)
        )
        return torch.cat([fwd, rc], dim=-1), res


class Caduceus(nn.Module):
    def __init__(self, config: CaduceusConfig):
        super().__init__()
        self.backbone = Backbone(config)


class RCPSLMHeadBuffers(nn.Module):
    """Holds the PS LM head's stored complement map, so the published state dict loads by name."""

    def __init__(self, config: CaduceusConfig):
        super().__init__()
        self.register_buffer("complement_map", torch.tensor(config.complement_list()))


class CaduceusForMaskedLM(nn.Module):
    """The published model. Public API: forward, embed, logits_conjoined; `tokenizer` turns DNA text
    into the ids this checkpoint was trained on."""

    def __init__(self, config: CaduceusConfig, tokenizer: Tokenizer = CADUCEUS):
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self.caduceus = Caduceus(config)
        if config.rcps:
            self.lm_head = RCPSLMHeadBuffers(config)
        # the RC pass of a PH model pairs ids as its config says, else as its tokenizer's bases pair
        complement = config.complement_list() if config.complement_map else _padded(tokenizer.complement, config)
        self.register_buffer("complement", torch.tensor(complement), persistent=False)
        self.provenance: dict[str, str | None] = {"source": None, "revision": None, "sha256": None}
        self.default_window: int | None = None  # the training length, when known
        self.window_source: str | None = None  # where default_window came from

    @property
    def variant(self) -> str:
        return "ps" if self.config.rcps else "ph"

    @property
    def embedding_weight(self) -> torch.Tensor:
        words = self.caduceus.backbone.embeddings.word_embeddings
        return words.embedding.weight if self.config.rcps else words.weight

    def reverse_complement(self, ids: torch.Tensor) -> torch.Tensor:
        return self.complement[ids].flip(-1)

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        # the original casts logits to float32; a float64 model keeps float64 for exactness checks
        out_dtype = torch.promote_types(hidden.dtype, torch.float32)
        weight = self.embedding_weight
        if not self.config.rcps:
            return F.linear(hidden, weight).to(out_dtype)
        d = self.config.d_model
        comp = self.lm_head.complement_map
        logits = F.linear(hidden[..., :d], weight) + F.linear(hidden[..., d:].flip(-1), weight[comp])
        return logits.to(out_dtype)

    def forward(self, ids: torch.Tensor, output_hidden_states: bool = False) -> ModelOutput:
        hidden, states = self.caduceus.backbone(ids, output_hidden_states)
        return ModelOutput(self.head(hidden), hidden, tuple(states) if states is not None else None)

    def _with_rc_pass(self, ids: torch.Tensor) -> tuple[ModelOutput, ModelOutput]:
        """Run ids and their reverse complements as one batch; the RC output stays in RC coordinates."""
        both = self(torch.cat([ids, self.reverse_complement(ids)], dim=0))
        batch = ids.shape[0]
        split = (
            ModelOutput(both.logits[:batch], both.hidden[:batch]),
            ModelOutput(both.logits[batch:], both.hidden[batch:]),
        )
        return split

    def _strand_embedding(self, hidden: torch.Tensor) -> torch.Tensor:
        """Per-position embedding of one pass: PH the hidden state; PS the average of the forward half and
        the channel-flipped RC half (RC-invariant by construction)."""
        if not self.config.rcps:
            return hidden
        d = self.config.d_model
        return 0.5 * (hidden[..., :d] + hidden[..., d:].flip(-1))

    @staticmethod
    def _check_rc(rc: str) -> None:
        if rc not in RC_MODES:
            raise ValueError(f"rc must be 'auto', 'none' or 'average', got {rc!r}")

    def _rc_batch(self, rc: str) -> bool:
        """Whether `rc` runs the reverse complement as a second batch: average, and auto on PH."""
        self._check_rc(rc)
        return rc == "average" or (rc == "auto" and not self.config.rcps)

    def strand_passes(self, rc: str = "auto") -> int:
        """Strands the network runs per input window under `rc` (what memory scales with): 2 with the
        RC batch, and doubled on PS, whose every call runs both strands."""
        return (2 if self._rc_batch(rc) else 1) * (2 if self.config.rcps else 1)

    def embed(self, ids: torch.Tensor, rc: str = "auto") -> torch.Tensor:
        """(B, L) -> (B, L, d) per-position embedding. auto: PS one pass, PH forward and RC passes
        averaged (RC pass flipped back); none: forward strand only; average: two passes for either."""
        if not self._rc_batch(rc):
            return self._strand_embedding(self(ids).hidden)
        fwd, rev = self._with_rc_pass(ids)
        return 0.5 * (self._strand_embedding(fwd.hidden) + self._strand_embedding(rev.hidden).flip(1))

    def logits_conjoined(self, ids: torch.Tensor, rc: str = "auto") -> torch.Tensor:
        """(B, L) -> (B, L, V): 0.5 * (logits(x) + flipL(logits(rc x))[..., comp]); PS is already
        RC-equivariant, so `auto` runs it once."""
        if not self._rc_batch(rc):
            return self(ids).logits
        fwd, rev = self._with_rc_pass(ids)
        return 0.5 * (fwd.logits + rev.logits.flip(1)[..., self.complement])


def _padded(complement, config: CaduceusConfig) -> list[int]:
    """A tokenizer's complement table over the model's padded vocabulary (every extra id itself)."""
    table = list(range(config.padded_vocab_size))
    table[: len(complement)] = complement.tolist()[: len(table)]
    return table
