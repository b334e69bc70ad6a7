"""A pack's checkpoint as its jobs' ordinary single-model checkpoints, and back.

``job_checkpoint`` cuts model ``n``'s part out of the checkpoint Lightning dumps for the packed module: its
slice of every weight (the unpacked keys; with weight averaging, of the average and of the trained weights),
its optimizer's and learning-rate schedule's state, its own callbacks' state (early stopping), its data
position, its run's hyperparameters and config; what the models share (epoch, step, loops, the random-number
state) is copied. ``eval.py``, ``sample.py``, ``vae_zoo.load`` and ``train.py ckpt_path=`` read the result like
any run's checkpoint. ``pack_checkpoint`` stacks the jobs' checkpoints back into one the packed module resumes from.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from vae_zoo.errors import VaeZooError
from vae_zoo.packing.packed_vae import PackedVAE
from vae_zoo.saved_run import KEY

PACKED_PREFIX = "model."  # the packed module's state dict is its packed model's


#: the entry holding each job's own callback states (``{state_key: state}`` per job: its early stopping's, its
#: checkpoint record as its ``ModelCheckpoint`` keeps it), which each job's checkpoint holds among its ``callbacks``
JOB_CALLBACKS = "job_callbacks"

#: the entry of a job's checkpoint saying that its model stopped early in its pack (``{"epochs",
#: "global_step"}``): a packed resume keeps it stopped, whatever step the others stand at
STOPPED_EARLY = "stopped_early"

#: the entries holding model weights: Lightning's, and the trained weights an average replaced there
#: (``callbacks.ema``: the average is the ``state_dict``)
WEIGHTS = ("state_dict", "current_model_state")


def model_part(weights: dict[str, Any], n: int) -> dict[str, Any]:
    """Model ``n``'s unpacked weights from the packed module's (``model.``-prefixed, stacked)."""
    return {key[len(PACKED_PREFIX) :]: value[n].clone() for key, value in weights.items()}


def _loader_states(checkpoint: dict[str, Any]) -> list[Any]:
    return checkpoint["loops"]["fit_loop"]["state_dict"]["combined_loader"]


def job_checkpoint(
    checkpoint: dict[str, Any], packed: PackedVAE, n: int, run: dict[str, Any]
) -> dict[str, Any]:
    """Job ``n``'s checkpoint from the pack's ``checkpoint``; ``run``: its config and choices (``KEY``)."""
    job = {**checkpoint, "loops": copy.deepcopy(checkpoint["loops"])}
    job["loops"]["fit_loop"]["state_dict"]["combined_loader"] = [
        state["models"][n] for state in _loader_states(checkpoint)
    ]
    for weights in WEIGHTS:  # the weights, and the trained ones beside an average (weight averaging)
        if weights in checkpoint:
            job[weights] = model_part(checkpoint[weights], n)
    job["optimizer_states"] = [checkpoint["optimizer_states"][0]["models"][n]]
    job["lr_schedulers"] = [schedules["models"][n] for schedules in checkpoint["lr_schedulers"]]
    job["hparams_name"], job["hyper_parameters"] = "kwargs", dict(packed.runs[n].hparams)
    job["callbacks"] = {**checkpoint["callbacks"], "NonFiniteGuard": {"skipped_batches": packed.skipped[n]}}
    job["callbacks"] |= job.pop(JOB_CALLBACKS, [{}] * packed.models)[n]
    if n in packed.stopped:
        stopped = packed.stopped[n]
        job[STOPPED_EARLY] = {"epochs": stopped.epochs, "global_step": stopped.global_step}
    job[KEY] = run
    return job


def pack_checkpoint(jobs: list[dict[str, Any]], paths: list[str]) -> dict[str, Any]:
    """One checkpoint of the packed module from its jobs' (``paths`` name them in errors): the weights
    stacked, each optimizer's and schedule's state and data position kept; the jobs that still train must stand
    at one step (those that stopped early stay stopped where they stopped)."""
    running = [(job, path) for job, path in zip(jobs, paths) if STOPPED_EARLY not in job] or list(
        zip(jobs, paths)
    )
    if len({job["global_step"] for job, _ in running}) > 1:
        where = ", ".join(f"{path} at step {job['global_step']}" for job, path in running)
        raise VaeZooError(
            f"the checkpoints of a packed resume stand at different steps ({where}) -- resume these jobs "
            "unpacked, or from checkpoints one pack wrote"
        )
    first = running[0][0]
    packed = {**first, "loops": copy.deepcopy(first["loops"])}
    loaders = [_loader_states(job) for job in jobs]
    packed["loops"]["fit_loop"]["state_dict"]["combined_loader"] = [
        {"models": list(states)} for states in zip(*loaders)
    ]
    for weights in WEIGHTS:
        if weights in first:
            packed[weights] = {
                PACKED_PREFIX + key: torch.stack([job[weights][key] for job in jobs])
                for key in first[weights]
            }
    packed["optimizer_states"] = [{"models": [job["optimizer_states"][0] for job in jobs]}]
    packed["lr_schedulers"] = [
        {"models": list(states)} for states in zip(*(job["lr_schedulers"] for job in jobs))
    ]
    packed[JOB_CALLBACKS] = [job["callbacks"] for job in jobs]  # each job's own callbacks pick theirs
    packed[STOPPED_EARLY] = {n: job[STOPPED_EARLY] for n, job in enumerate(jobs) if STOPPED_EARLY in job}
    for key in ("hparams_name", "hyper_parameters", KEY):
        packed.pop(key, None)
    return packed
