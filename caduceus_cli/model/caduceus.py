"""Caduceus for masked language modelling: PH (plain) and PS (reverse-complement parameter sharing).

Module and parameter names mirror the original implementation, so the published
`model.safetensors` loads by name (see load.py for the tied tensors it leaves out).

    ids (B, L) -> Embeddings -> n_layer x Block [residual += hidden; hidden = BiMamba(norm(residual))]
      -> add, final norm -> hidden (B, L, C) -> tied LM head -> logits (B, L, V)

Each direction of a BiMamba is a Mamba-1 mixer (mamba1.py: Caduceus, PlantCaduceus) or a Mamba-2 mixer
(mamba2.py: PlantCAD2), as the checkpoint's weights say; everything around the mixers is the same.

C = d for PH; for PS the residual stream carries a forward half and a reverse-complement half
(C = 2d), the RC half stored flipped back into forward coordinates. The classes below follow that
order, each `forward` doing its own step. A block returns (mixer output, residual), so a forward hook
on `model.caduceus.backbone.layers[i]` sees as output[0] what `output_hidden_states` reports as entry
i + 1 (for the last block that entry is the final hidden instead).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from caduceus_cli.model.config import CaduceusConfig
from caduceus_cli.model.mamba1 import Mamba
from caduceus_cli.model.mamba2 import Mamba2
from caduceus_cli.tokens import CADUCEUS, Tokenizer

RC_MODES = ("auto", "none", "average")  # reverse-complement handling of embed() and logits_conjoined()


def flip_lc(x: torch.Tensor) -> torch.Tensor:
    """Reverse length and channels: the RC of a (B, L, C) tensor of strand-aware features."""
    return x.flip(1, 2)


# --- normalisation ---------------------------------------------------------------------------------
# Both norms compute in at least float32, as mamba-ssm's fused kernel does, and return the model's dtype
# (their weight's). `flip` reverses the weight (and bias): that is how PS normalises its RC half, whose
# channels are stored flipped (equal to flipping the channels, normalising and flipping back).


class RMSNorm(nn.Module):
    """Root-mean-square norm with a weight and no bias (rms_norm=true, as published)."""

    def __init__(self, d: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor, flip: bool = False) -> torch.Tensor:
        """x / sqrt(mean(x^2) + eps) * weight over the last axis."""
        compute = torch.promote_types(x.dtype, torch.float32)
        x = x.to(compute)
        weight = self.weight.to(compute)
        weight = weight.flip(0) if flip else weight
        out = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * weight
        return out.to(self.weight.dtype)


class LayerNorm(nn.LayerNorm):
    """nn.LayerNorm (same parameters) with the dtype contract and `flip` of RMSNorm (rms_norm=false)."""

    def forward(self, x: torch.Tensor, flip: bool = False) -> torch.Tensor:
        compute = torch.promote_types(x.dtype, torch.float32)
        weight, bias = self.weight.to(compute), self.bias.to(compute)
        if flip:
            weight, bias = weight.flip(0), bias.flip(0)
        out = F.layer_norm(x.to(compute), (x.shape[-1],), weight, bias, self.eps)
        return out.to(self.weight.dtype)


def make_norm(config: CaduceusConfig) -> RMSNorm | LayerNorm:
    if config.rms_norm:
        return RMSNorm(config.d_model, config.norm_epsilon)
    return LayerNorm(config.d_model, eps=config.norm_epsilon)


# --- mixers ----------------------------------------------------------------------------------------


MIXERS = {"Mamba1": Mamba, "Mamba2": Mamba2}  # by ssm_cfg "layer", as mamba-ssm names them


class BiMamba(nn.Module):
    """out = M_fwd(h) (+ or *) flipL(M_rev(flipL(h))); M_rev shares M_fwd's in/out projections when tied.
    M is the checkpoint's mixer, Mamba-1 or Mamba-2: both take the in_proj output to the out_proj input
    with `gated_ssm(projected, reverse)`."""

    def __init__(self, config: CaduceusConfig):
        super().__init__()
        self.tied = config.bidirectional_weight_tie
        self.strategy = config.bidirectional_strategy
        self.bidirectional = config.bidirectional
        mixer = MIXERS[config.mixer.kind]
        self.mamba_fwd = mixer(config)
        if self.bidirectional:
            self.mamba_rev = mixer(config, with_projections=not self.tied)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """(B, L, d) -> (B, L, d). The reverse direction runs in forward coordinates (no flips)."""
        fwd = self.mamba_fwd
        if not self.bidirectional:
            return fwd(h)
        if not self.tied:
            out_fwd, out_rev = fwd(h), self.mamba_rev(h, reverse=True)
            return out_fwd + out_rev if self.strategy == "add" else out_fwd * out_rev
        # Tied (as published): both directions read one in_proj output, and with "add" one out_proj
        # serves the sum of both directions, W (y_fwd + y_rev) + b, instead of two; so neither direction
        # runs through Mamba.forward here (a hook to read the mixer goes on this module).
        projected = fwd.in_proj(h)  # (B, L, 2E) for Mamba-1, (B, L, 2E + 2GN + heads) for Mamba-2
        y_fwd, y_rev = fwd.gated_ssm(projected), self.mamba_rev.gated_ssm(projected, reverse=True)  # (B, L, E)
        if self.strategy == "add":
            out = fwd.out_proj(y_fwd + y_rev)
            return out if fwd.out_proj.bias is None else out + fwd.out_proj.bias
        return fwd.out_proj(y_fwd) * fwd.out_proj(y_rev)


class RCPSMixer(nn.Module):
    """PS: the shared BiMamba on the forward half and, reverse-complemented, on the RC half."""

    def __init__(self, config: CaduceusConfig):
        super().__init__()
        self.submodule = BiMamba(config)

    def forward(self, fwd: torch.Tensor, rc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Two (B, L, d) normalised halves -> the two (B, L, d) halves of the block's output."""
        batch = fwd.shape[0]
        out = self.submodule(torch.cat([fwd, flip_lc(rc)], dim=0))  # (2B, L, d): one call for both strands
        return out[:batch], flip_lc(out[batch:])


# --- blocks ----------------------------------------------------------------------------------------


def add_residual(
    hidden: torch.Tensor, residual: torch.Tensor | None, norm: nn.Module, in_fp32: bool
) -> torch.Tensor:
    """The residual stream with `hidden` added, in the model's dtype (that of `norm`, which reads it
    next), or at least float32 with residual_in_fp32. The first block has no residual yet."""
    dtype = norm.weight.dtype
    summed = hidden if residual is None else hidden + residual
    return summed.to(torch.promote_types(dtype, torch.float32) if in_fp32 else dtype)


class Block(nn.Module):
    """PH block, mamba-ssm's Add -> Norm -> Mixer: residual += hidden; hidden = BiMamba(norm(residual))."""

    def __init__(self, config: CaduceusConfig):
        super().__init__()
        self.norm = make_norm(config)
        self.mixer = BiMamba(config)
        self.residual_in_fp32 = config.residual_in_fp32

    def forward(
        self, hidden: torch.Tensor, residual: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, d) previous mixer output (or the embedding) and residual (None in the first block) ->
        this block's mixer output and the residual stream."""
        residual = add_residual(hidden, residual, self.norm, self.residual_in_fp32)
        return self.mixer(self.norm(residual)), residual


class RCPSBlock(nn.Module):
    """PS block on (B, L, 2d) tensors: the forward half, and the RC half stored flipped back into forward
    coordinates. The norm weight is shared by the halves (reversed for the RC half), the BiMamba too."""

    def __init__(self, config: CaduceusConfig):
        super().__init__()
        self.norm = make_norm(config)
        self.mixer = RCPSMixer(config)
        self.residual_in_fp32 = config.residual_in_fp32
        self.swap_halves = config.fused_add_norm

    def forward(
        self, hidden: torch.Tensor, residual: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        residual = add_residual(hidden, residual, self.norm, self.residual_in_fp32)
        d = residual.shape[-1] // 2
        first, second = residual[..., :d], residual[..., d:]
        if self.swap_halves:
            # The published (fused add+norm) path swaps the two halves of the residual at every block
            # and normalises the RC half as the forward input; the unfused path does not swap.
            first, second = second, first
            residual = torch.cat([first, second], dim=-1)
        fwd, rc = self.mixer(self.norm(first), self.norm(second, flip=True))
        return torch.cat([fwd, rc], dim=-1), residual


# --- embeddings, backbone --------------------------------------------------------------------------


class RCPSEmbedding(nn.Module):
    """PS: one embedding table for both strands, and the complement map that pairs them."""

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
    """The token embedding: nn.Embedding for PH, RCPSEmbedding for PS."""

    def __init__(self, config: CaduceusConfig):
        super().__init__()
        if config.rcps:
            self.word_embeddings = RCPSEmbedding(config)
        else:
            self.word_embeddings = nn.Embedding(config.padded_vocab_size, config.d_model)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, L) -> (B, L, C)."""
        return self.word_embeddings(ids)


class Backbone(nn.Module):
    """Embeddings, the blocks, and the final add and norm."""

    def __init__(self, config: CaduceusConfig):
        super().__init__()
        self.embeddings = Embeddings(config)
        block = RCPSBlock if config.rcps else Block
        self.layers = nn.ModuleList(block(config) for _ in range(config.n_layer))
        self.norm_f = make_norm(config)
        self.rcps, self.residual_in_fp32 = config.rcps, config.residual_in_fp32

    def forward(
        self, ids: torch.Tensor, output_hidden_states: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """(B, L) ids -> final hidden (B, L, C) and, if asked, the per-layer states of the original code:
        the embedding, each block's mixer output, and (in place of the last one) the final hidden."""
        hidden, residual = self.embeddings(ids), None
        states = [hidden] if output_hidden_states else None
        for layer in self.layers:
            hidden, residual = layer(hidden, residual)
            if states is not None:
                states.append(hidden)
        residual = add_residual(hidden, residual, self.norm_f, self.residual_in_fp32)
        if self.rcps:  # each half in its own orientation; no half swap here, unlike the blocks
            d = residual.shape[-1] // 2
            hidden = torch.cat(
                [self.norm_f(residual[..., :d]), self.norm_f(residual[..., d:], flip=True)], dim=-1
            )
        else:
            hidden = self.norm_f(residual)
        if states is not None:
            states[-1] = hidden  # the original reports the final normed hidden, not the last mixer output
        return hidden, states


class Caduceus(nn.Module):
    """The original's AutoModel: the backbone under the name the published state dict uses."""

    def __init__(self, config: CaduceusConfig):
        super().__init__()
        self.backbone = Backbone(config)

    def forward(
        self, ids: torch.Tensor, output_hidden_states: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        return self.backbone(ids, output_hidden_states)


# --- LM head and the published model -----------------------------------------------------------------
# The head is tied to the embedding: its weight is passed in, so the state dict holds no copy of it.
# The original casts logits to float32; a float64 model keeps float64 for exactness checks.


class LMHead(nn.Module):
    """PH: logits = hidden @ Emb.T."""

    def forward(self, hidden: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """(B, L, d) hidden, (V, d) embedding weight -> (B, L, V) logits."""
        return F.linear(hidden, weight).to(torch.promote_types(hidden.dtype, torch.float32))


class RCPSLMHead(nn.Module):
    """PS: the forward half against the embedding, plus the RC half (channels flipped back) against the
    complement's embedding. Holds its stored complement map, so the published state dict loads by name."""

    def __init__(self, config: CaduceusConfig):
        super().__init__()
        self.register_buffer("complement_map", torch.tensor(config.complement_list()))

    def forward(self, hidden: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """(B, L, 2d) hidden, (V, d) embedding weight -> (B, L, V) logits."""
        d = weight.shape[1]
        fwd = F.linear(hidden[..., :d], weight)
        rc = F.linear(hidden[..., d:].flip(-1), weight[self.complement_map])
        return (fwd + rc).to(torch.promote_types(hidden.dtype, torch.float32))


@dataclass
class ModelOutput:
    logits: torch.Tensor  # (B, L, V), float32 (float64 for a float64 model)
    hidden: torch.Tensor  # (B, L, C), after the final norm
    hidden_states: tuple[torch.Tensor, ...] | None = None  # embedding, mixer outputs..., hidden


class CaduceusForMaskedLM(nn.Module):
    """The published model. Public API: forward, embed, logits_conjoined; `tokenizer` turns DNA text
    into the ids this checkpoint was trained on."""

    def __init__(self, config: CaduceusConfig, tokenizer: Tokenizer = CADUCEUS):
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self.caduceus = Caduceus(config)
        self.lm_head = RCPSLMHead(config) if config.rcps else LMHead()
        # the RC pass of a PH model pairs ids as its config says, else as its tokenizer's bases pair
        complement = (
            config.complement_list() if config.complement_map else _padded(tokenizer.complement, config)
        )
        self.register_buffer("complement", torch.tensor(complement), persistent=False)
        self.provenance: dict[str, str | None] = {"source": None, "revision": None, "sha256": None}
        self.default_window: int | None = None  # the training length, when known
        self.window_source: str | None = None  # where default_window came from

    def forward(self, ids: torch.Tensor, output_hidden_states: bool = False) -> ModelOutput:
        hidden, states = self.caduceus(ids, output_hidden_states)
        return ModelOutput(self.head(hidden), hidden, tuple(states) if states is not None else None)

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, L, C) final hidden -> (B, L, V) logits, through the LM head tied to the embedding."""
        return self.lm_head(hidden, self.embedding_weight)

    @property
    def variant(self) -> str:
        return "ps" if self.config.rcps else "ph"

    @property
    def embedding_weight(self) -> torch.Tensor:
        words = self.caduceus.backbone.embeddings.word_embeddings
        return words.embedding.weight if self.config.rcps else words.weight

    def reverse_complement(self, ids: torch.Tensor) -> torch.Tensor:
        return self.complement[ids].flip(-1)

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
