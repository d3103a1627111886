"""What a job asks a scheduler for: the memory estimate against the manual's measured peaks, and the facts
of the shipped model it uses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from caduceus_cli import resources
from caduceus_cli.model.load import default_model_path, training_length

PH_131K = "kuleshov-group/caduceus-ph_seqlen-131k_d_model-256_n_layer-16"
PS_131K = "kuleshov-group/caduceus-ps_seqlen-131k_d_model-256_n_layer-16"
PLANT_LARGEST = "kuleshov-group/PlantCaduceus_l32"
PLANTCAD2_SMALL = "kuleshov-group/PlantCAD2-Small-l24-d0768"

# docs/scaling.md, Memory: the largest peak RSS (MiB) measured for each model and window (batch)
MEASURED = [
    (None, 1024, None, 614),
    (PH_131K, 2048, None, 1019),
    (PH_131K, 131_072, 1, 5190),
    (PS_131K, 2048, None, 1066),
    (PLANT_LARGEST, 512, None, 2706),
    (PLANTCAD2_SMALL, 8192, None, 2094),
]


@pytest.mark.parametrize(("model", "window", "batch", "peak"), MEASURED)
def test_the_memory_asked_for_covers_the_measured_peak_without_waste(model, window, batch, peak):
    asked = resources.job_memory_mb(resources.model_size(model), window, batch)
    assert peak * 1.1 <= asked <= peak * 1.5


def test_the_shipped_model_size_is_that_of_its_files():
    folder = default_model_path()
    config = json.loads((folder / "config.json").read_text())
    assert resources.ModelSize(
        config["d_model"], (folder / "model.safetensors").stat().st_size, training_length(folder, str(folder))[0]
    ) == resources.SHIPPED
    assert resources.model_size(str(folder)) == resources.SHIPPED


def test_a_checkpoint_folder_is_sized_from_its_config_and_weights(tiny_checkpoint):
    folder = tiny_checkpoint("ph", max_length=64)
    size = resources.model_size(str(folder))
    weights = next(path for path in Path(folder).iterdir() if path.name in ("model.safetensors", "pytorch_model.bin"))
    assert size == resources.ModelSize(8, weights.stat().st_size, 64)


def test_a_local_plantcad2_copy_is_sized_as_mamba2_at_its_familys_length(tmp_path, plantcad2_checkpoint):
    folder = tmp_path / "my-model"  # no hub id, any name
    shutil.copytree(plantcad2_checkpoint, folder)
    size = resources.model_size(str(folder))
    assert (size.d_model, size.training_length, size.mixer) == (8, 8192, "Mamba2")


def test_the_window_and_batch_come_from_the_options_or_the_model_defaults():
    ph = resources.model_size(PH_131K)
    assert resources.embed_memory_mb(PH_131K) == resources.job_memory_mb(ph, 131_072)
    assert resources.embed_memory_mb(PH_131K, "--window=2048 --pool mean") == resources.job_memory_mb(ph, 2048)
    assert resources.score_memory_mb(PH_131K) == resources.job_memory_mb(ph, 2048)  # at most 2,048 by default
    assert resources.score_memory_mb(PH_131K, "-w 1024 --batch-size 16") == resources.job_memory_mb(ph, 1024, 16)
    assert resources.batch_tokens(2048) == 8192 and resources.batch_tokens(3000) == 6000
    assert resources.batch_tokens(131_072) == 131_072 and resources.batch_tokens(1024, 2) == 2048
