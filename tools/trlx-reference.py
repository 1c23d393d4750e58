#!/usr/bin/env python3
"""Independent reference data for the Go PPO / reward code (issue 21).

Run:    /usr/bin/python3 tools/trlx-reference.py testdata/trlx
Needs:  PyTorch (Debian's python3-torch 1.13 is enough) and NumPy. Nothing
        else: neither trlx nor transformers is imported.

What it does. The pure-PyTorch pieces of TRLx's PPO that a reimplementation
has to match are run on small, fixed, hard-coded inputs, once with the code of
each of two TRLx versions:

  fork  EleutherAI/trlx @ 126c8f0eb324eab8488f2cdddf5249dbbc28a8f5, the commit
        the paper's RLHF runs pinned (a fork of CarperAI/trlx v0.7.0 + 3 commits)
  main  CarperAI/trlx   @ 3340c2f3a56d1d14fdd5f13ad575121fa26b6d92 (main)

and the reward code of the official irl_for_llms repository

  irl   ai4ai-lab/irl_for_llms @ 1597c93083f7e33285ab957efb41beed9d6ba5bd (main)

is run on hand-made batches. The outputs go to JSON files (float64 values;
non-finite floats are written as the strings "nan", "inf", "-inf").

How the upstream code is used. The upstream code is NOT retyped: SOURCES
below holds verbatim excerpts (repo, commit, path, line range and text, only
dedented), and the script exec()s that very text. Where an excerpt is a piece
of a long method (make_experience), it is exec()d in a namespace that holds
what the method would have had at that point (the model outputs are given as
tensors). Check the excerpts against git with

    /usr/bin/python3 tools/trlx-reference.py --verify FORK_GITDIR MAIN_GITDIR IRL_GITDIR

Deviations from the upstream code, all deliberate and listed here:
  * float64 everywhere: inputs are float64 tensors; in main's make_experience
    the reward list is converted with `dtype=torch.float`, which the namespace
    maps to torch.float64 (TORCH64 below) so the whole score path is float64.
  * the model, tokenizer, generation, accelerate, ray, wandb, logging and the
    reward pipelines are stubs; torchtyping's TensorType is a stub.
  * distributed paths are off (torch.distributed is not initialised).
"""

import contextlib
import dataclasses
import json
import math
import os
import subprocess
import sys
import textwrap
import types
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, is_dataclass
from types import SimpleNamespace
from typing import Any, Dict, Iterable, List, MutableMapping, Optional, Tuple, Union

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset

torch.set_default_dtype(torch.float64)
warnings.filterwarnings("ignore")

# Verbatim upstream excerpts (generated; see the module docstring). Each: repo, commit, path, 1-based
# inclusive line range, and the text of those lines after textwrap.dedent.
SOURCES = {}
SOURCES['fork/utils.whiten'] = dict(
    repo='EleutherAI/trlx', commit='126c8f0eb324eab8488f2cdddf5249dbbc28a8f5',
    path='trlx/utils/modeling.py', lines='193-203',
    text=r'''def whiten(xs: torch.Tensor, shift_mean=True, distributed=True, group=None) -> torch.Tensor:
    """Whitens values"""
    if distributed and dist.is_initialized():
        mean, var, _ = get_global_statistics(xs, group=group)
    else:
        var, mean = torch.var_mean(xs)

    whitened = (xs - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        whitened += mean
    return whitened
''',
)
SOURCES['fork/utils.logprobs_of_labels'] = dict(
    repo='EleutherAI/trlx', commit='126c8f0eb324eab8488f2cdddf5249dbbc28a8f5',
    path='trlx/utils/modeling.py', lines='206-212',
    text=r'''def logprobs_of_labels(logits, labels):
    """Log probabilities of the labels

    These are calculated from the logits."""
    logprobs = F.log_softmax(logits, dim=-1)
    logprobs_labels = torch.gather(logprobs, dim=-1, index=labels.unsqueeze(-1))
    return logprobs_labels.squeeze(-1)
''',
)
SOURCES['fork/utils.flatten_dict'] = dict(
    repo='EleutherAI/trlx', commit='126c8f0eb324eab8488f2cdddf5249dbbc28a8f5',
    path='trlx/utils/modeling.py', lines='215-228',
    text=r'''def flatten_dict(
    d: Union[dict, MutableMapping],
    parent_key: str = "",
    sep: str = "/",
) -> dict:
    # From: https://stackoverflow.com/a/6027615
    items = []
    for k, v in d.items():
        new_key = parent_key + sep + k if parent_key else k
        if isinstance(v, MutableMapping):
            items.extend(flatten_dict(v, new_key, sep=sep).items())
        else:
            items.append((new_key, v))
    return dict(items)
''',
)
SOURCES['fork/utils.get_tensor_stats'] = dict(
    repo='EleutherAI/trlx', commit='126c8f0eb324eab8488f2cdddf5249dbbc28a8f5',
    path='trlx/utils/modeling.py', lines='255-265',
    text=r'''def get_tensor_stats(xs: torch.Tensor, mask: torch.Tensor, n: int):
    if xs.numel() == 0:
        return dict(mean=0, min=0, max=0, std=0)

    mean = (xs * mask).sum() / n
    return dict(
        mean=mean,
        min=torch.where(mask.bool(), xs, np.inf).min(),
        max=torch.where(mask.bool(), xs, -np.inf).max(),
        std=torch.sqrt(((xs - mean) * mask).pow(2).sum() / n),
    )
''',
)
SOURCES['fork/utils.RunningMoments'] = dict(
    repo='EleutherAI/trlx', commit='126c8f0eb324eab8488f2cdddf5249dbbc28a8f5',
    path='trlx/utils/modeling.py', lines='268-300',
    text=r'''class RunningMoments:
    def __init__(self):
        """
        Calculates the running mean and standard deviation of a data stream. Modified version of
        https://github.com/DLR-RM/stable-baselines3/blob/a6f5049a99a4c21a6f0bcce458ca3306cef310e0/stable_baselines3/common/running_mean_std.py
        """
        self.mean = 0
        self.std = 1
        self.var = 1
        self.count = 1e-24

    def update(self, xs: torch.Tensor) -> Tuple[float, float]:
        """Updates running moments from batch's moments computed across ranks"""
        if dist.is_initialized():
            xs_mean, xs_var, xs_count = get_global_statistics(xs)
        else:
            xs_count = xs.numel()
            xs_var, xs_mean = torch.var_mean(xs, unbiased=False)

        delta = xs_mean - self.mean
        tot_count = self.count + xs_count

        new_sum = xs_var * xs_count
        # correct old_sum deviation accounting for the new mean
        old_sum = self.var * self.count + delta**2 * self.count * xs_count / tot_count
        tot_sum = old_sum + new_sum

        self.mean += delta * xs_count / tot_count
        self.var = tot_sum / tot_count
        self.std = (self.var * tot_count / (tot_count - 1)).sqrt()
        self.count = tot_count

        return xs_mean, (xs_var * xs_count / (xs_count - 1)).sqrt()
''',
)
SOURCES['fork/ppo.AdaptiveKLController'] = dict(
    repo='EleutherAI/trlx', commit='126c8f0eb324eab8488f2cdddf5249dbbc28a8f5',
    path='trlx/models/modeling_ppo.py', lines='35-53',
    text=r'''class AdaptiveKLController:
    """Adaptive KL Controller as described in Ziegler et al. "Fine-Tuning Language Models from Human Preferences"
    Reference: Section 2.2 https://arxiv.org/pdf/1909.08593.pdf#page=2
    Source: https://github.com/openai/lm-human-preferences/blob/master/lm_human_preferences/train_policy.py
    """

    def __init__(self, init_kl_coef: float, target: float, horizon: int):
        self.value = init_kl_coef
        self.target = target
        self.horizon = horizon

    def update(self, current: float, n_steps: int):
        """Returns adaptively updated KL coefficient, βₜ₊₁.
        Arguments:
            current: The current KL value between the newest policy and the initial policy.
        """
        proportional_error = np.clip(current / self.target - 1, -0.2, 0.2)  # ϵₜ
        mult = 1 + proportional_error * n_steps / self.horizon
        self.value *= mult  # βₜ₊₁
''',
)
SOURCES['fork/ppo.FixedKLController'] = dict(
    repo='EleutherAI/trlx', commit='126c8f0eb324eab8488f2cdddf5249dbbc28a8f5',
    path='trlx/models/modeling_ppo.py', lines='56-67',
    text=r'''class FixedKLController:
    """Fixed KL controller."""

    def __init__(self, kl_coef):
        self.value = kl_coef

    def update(self, current: float, n_steps: int):
        """Returns updated KL coefficient, βₜ₊₁.
        Arguments:
            current: The current KL value between the newest policy and the initial policy.
        """
        pass
''',
)
SOURCES['fork/ppo.PPOConfig.get_advantages_and_returns'] = dict(
    repo='EleutherAI/trlx', commit='126c8f0eb324eab8488f2cdddf5249dbbc28a8f5',
    path='trlx/models/modeling_ppo.py', lines='135-172',
    text=r'''def get_advantages_and_returns(
    self,
    values: TensorType["batch_size", "response_size"],
    rewards: TensorType["batch_size", "response_size"],
    response_length: int,
    use_whitening: Optional[bool] = True,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Function that computes advantages and returns from rewards and values.
    Calculated as in the original PPO paper: https://arxiv.org/abs/1707.06347
    Note that rewards may include a KL divergence loss term.

    Advantages looks like this:
    Adv1 =  R1 + γ * λ * R2     + γ^2 * λ^2 * R3       + ...
          - V1 + γ * (1 - λ) V2 + γ^2 * λ * (1 - λ) V3 + ...

    Returns looks like this:
    Ret1 =  R1 + γ * λ * R2     + γ^2 * λ^2 * R3       + ...
               + γ * (1 - λ) V2 + γ^2 * λ * (1 - λ) V3 + ...

    Args:
        values: Tensor of shape (batch_size, response_size)
        rewards: Tensor of shape (batch_size, response_size)
        response_length: Length of the response sequence
        use_whitening: Whether to use whitening (ie. normalize advantages) or not
    """
    lastgaelam = 0
    advantages_reversed = []

    for t in reversed(range(response_length)):
        nextvalues = values[:, t + 1] if t < response_length - 1 else 0.0
        delta = rewards[:, t] + self.gamma * nextvalues - values[:, t]
        lastgaelam = delta + self.gamma * self.lam * lastgaelam
        advantages_reversed.append(lastgaelam)
    advantages = torch.stack(advantages_reversed[::-1], dim=1)
    returns = advantages + values
    if use_whitening:
        advantages = whiten(advantages)
    return advantages.detach(), returns
''',
)
SOURCES['fork/ppo.PPOConfig.loss'] = dict(
    repo='EleutherAI/trlx', commit='126c8f0eb324eab8488f2cdddf5249dbbc28a8f5',
    path='trlx/models/modeling_ppo.py', lines='174-237',
    text=r'''def loss(
    self,
    logprobs: TensorType["batch_size", "response_size"],
    values: TensorType["batch_size", "response_size"],
    old_logprobs: TensorType["batch_size", "response_size"],
    old_values: TensorType["batch_size", "response_size"],
    advantages: TensorType["batch_size", "response_size"],
    returns: TensorType["batch_size", "response_size"],
    mask: TensorType["batch_size", "response_size"],
):
    """PPO objective function.
    References:
    - https://stable-baselines.readthedocs.io/en/master/modules/ppo2.html
    """
    values_clipped = torch.clamp(
        values,
        old_values - self.cliprange_value,
        old_values + self.cliprange_value,
    )
    n = mask.sum()

    vf_loss1 = (values - returns) ** 2
    vf_loss2 = (values_clipped - returns) ** 2
    vf_loss = 0.5 * torch.sum(torch.max(vf_loss1, vf_loss2) * mask) / n

    vf_clipfrac = torch.sum((vf_loss2 > vf_loss1).float() * mask) / n

    log_ratio = (logprobs - old_logprobs) * mask
    ratio = torch.exp(log_ratio)
    # Unbiased KL-div estimates (`k3`). Ref: http://joschu.net/blog/kl-approx.html
    with torch.no_grad():
        approx_kl = torch.mean((ratio - 1) - log_ratio)

    pg_loss1 = -advantages * ratio
    pg_loss2 = -advantages * torch.clamp(
        ratio,
        1.0 - self.cliprange,
        1.0 + self.cliprange,
    )
    pg_loss = torch.sum(torch.max(pg_loss1, pg_loss2) * mask) / n
    pg_clipfrac = torch.sum((pg_loss2 > pg_loss1).float() * mask) / n

    loss = pg_loss + self.vf_coef * vf_loss

    stats = dict(
        losses=dict(
            total_loss=loss.item(),
            policy_loss=pg_loss.item(),
            value_loss=vf_loss.item(),
        ),
        values=dict(
            get_tensor_stats(values, mask, n),
            values_error=torch.sum(((values - returns) * mask) ** 2) / n,
            values_mape_error=torch.sum((abs(values - returns) * mask) / abs(returns * mask + 1e-2)) / n,
            clipfrac=vf_clipfrac,
        ),
        old_values=get_tensor_stats(old_values, mask, n),
        returns=get_tensor_stats(returns, mask, n),
        policy=dict(approx_kl=approx_kl.item(), clipfrac=pg_clipfrac.item()),
        ratio=(ratio * mask).sum() / n,
        padding_percentage=1 - n / mask.numel(),
    )

    return loss, flatten_dict(stats)
''',
)
SOURCES['fork/types.PPORLElement'] = dict(
    repo='EleutherAI/trlx', commit='126c8f0eb324eab8488f2cdddf5249dbbc28a8f5',
    path='trlx/data/ppo_types.py', lines='6-35',
    text=r'''@dataclass
class PPORLElement:
    """
    :param query_tensor: The query tensor i.e. the prompt tokens.
                         Should be a long tensor.
    :type query_tensor: torch.Tensor

    :param response_tensor: The response tensor i.e. the output tokens.
                            Should be a long tensor.
    :type response_tensor: torch.Tensor

    :param logprobs: The log probabilities over the response tokens generated
                    by the policy network (i.e. the autoregressive model).
                    Should be a float tensor of same size as tokens.
    :type logprobs: torch.Tensor

    :param values: The values for each token generated from the value network or value head.
                    Should be a float tensor of same size as tokens.
    :type values: torch.Tensor

    :param rewards: The rewards for each token outputted in response.
                    Should be a float tensor of same size as tokens.
    :type rewards: torch.Tensor
    """

    query_tensor: TensorType["query_size"]
    response_tensor: TensorType["response_size"]
    logprobs: TensorType["response_size"]
    values: TensorType["response_size"]
    rewards: TensorType["response_size"]
''',
)
SOURCES['fork/types.PPORLBatch'] = dict(
    repo='EleutherAI/trlx', commit='126c8f0eb324eab8488f2cdddf5249dbbc28a8f5',
    path='trlx/data/ppo_types.py', lines='38-63',
    text=r'''@dataclass
class PPORLBatch:
    """
    A batched version of the PPORLElement. See PPORLElement for more details on individual fields.

    :param query_tensors: A batch of query tensors. Should be a long tensor.
    :type query_tensors: torch.Tensor

    :param response_tensors: A batch of response tensors. Should be a long tensor.
    :type response_tensors: torch.Tensor

    :param logprobs: A batch of log probabilities from policy
    :type logprobs: torch.Tensor

    :param values: A batch of values from value network
    :type values: torch.Tensor

    :param rewards: A batch of rewards
    :type rewards: torch.Tensor
    """

    query_tensors: TensorType["batch_size", "query_size"]
    response_tensors: TensorType["batch_size", "response_size"]
    logprobs: TensorType["batch_size", "response_size"]
    values: TensorType["batch_size", "response_size"]
    rewards: TensorType["batch_size", "response_size"]
''',
)
SOURCES['fork/pipeline.ppo_collate_fn'] = dict(
    repo='EleutherAI/trlx', commit='126c8f0eb324eab8488f2cdddf5249dbbc28a8f5',
    path='trlx/pipeline/ppo_pipeline.py', lines='14-50',
    text=r'''def ppo_collate_fn(padding_side: str, pad_token_id: int, elems: Iterable[PPORLElement]):
    if padding_side == "left":
        # Left padding of already left-padded queries
        query_tensors = pad_sequence(
            [elem.query_tensor.flip(0) for elem in elems],
            padding_value=pad_token_id,
            batch_first=True,
        ).flip(1)
    elif padding_side == "right":
        query_tensors = pad_sequence(
            [elem.query_tensor for elem in elems],
            padding_value=pad_token_id,
            batch_first=True,
        )
    else:
        raise ValueError(f"Invalid padding side: {padding_side}")

    return PPORLBatch(
        query_tensors,
        # Right pad the rest, to have a single horizontal query/response split
        pad_sequence(
            [elem.response_tensor for elem in elems],
            padding_value=pad_token_id,
            batch_first=True,
        ),
        pad_sequence(
            [elem.logprobs for elem in elems],
            padding_value=0.0,
            batch_first=True,
        ),
        pad_sequence([elem.values for elem in elems], padding_value=0.0, batch_first=True),
        pad_sequence(
            [elem.rewards for elem in elems],
            padding_value=0.0,
            batch_first=True,
        ),
    )
''',
)
SOURCES['fork/pipeline.MiniBatchIterator'] = dict(
    repo='EleutherAI/trlx', commit='126c8f0eb324eab8488f2cdddf5249dbbc28a8f5',
    path='trlx/pipeline/__init__.py', lines='105-177',
    text=r'''class MiniBatchIterator:
    """
    A custom iterator for generating mini-batches from a PyTorch DataLoader.
    """

    def __init__(self, data_loader, mb_size, num_mb):
        """
        Initializes the MiniBatchIterator.

        Args:
            data_loader (torch.utils.data.DataLoader): The DataLoader to generate mini-batches from.
            mb_size (int): The size of each mini-batch.
            num_mb (int): The number of mini-batches to generate for each iteration.
        """
        self.data_loader = data_loader
        self.data_loader_iter = iter(data_loader)
        self.mb_size = mb_size
        self.num_mb = num_mb

    def __iter__(self):
        return self

    def __next__(self):  # noqa: C901
        batch = next(self.data_loader_iter)
        if batch is None:
            logger.warning(
                "WARNING: Not enough samples to saturate the minibatch size. Increase the number "
                "of prompts or samples or decrease the minibatch size."
            )
            raise StopIteration

        minibatches = []

        for mbi in range(self.num_mb):
            sliced_data = {}
            batch_dict = batch
            if is_dataclass(batch):
                batch_dict = batch.__dict__
            for key, value in batch_dict.items():
                start_idx = mbi * self.mb_size
                end_idx = (mbi + 1) * self.mb_size
                sliced_data[key] = value[start_idx:end_idx]

                if self.num_mb > 1 and len(sliced_data[key]) == 0:
                    logger.warning(
                        "WARNING: MiniBatchIterator generated a minibatch with 0 elements. "
                        "This may be due to the wrong mb_size and/or num_mb or the last batch"
                        "in the dataset being smaller."
                    )
                    sliced_data.pop(key)
                    break
                elif self.num_mb > 1 and len(sliced_data[key]) < self.mb_size:
                    logger.warning(
                        "WARNING: MiniBatchIterator generated a minibatch with fewer elements than mb_size. "
                        "This may be due to the wrong mb_size and/or num_mb or the last batch in the dataset "
                        "being smaller."
                    )
            if not sliced_data:
                break

            if isinstance(batch, BatchEncoding):
                minibatch = BatchEncoding(sliced_data)
            elif is_dataclass(batch):
                minibatch = batch.__class__(**sliced_data)
            # else:
            #     minibatch = sliced_data

            minibatches.append(minibatch)

        if not minibatches:
            raise StopIteration

        return minibatches
''',
)
SOURCES['fork/base.accumulate'] = dict(
    repo='EleutherAI/trlx', commit='126c8f0eb324eab8488f2cdddf5249dbbc28a8f5',
    path='trlx/trainer/accelerate_base_trainer.py', lines='494-508',
    text=r'''@contextmanager
def _accumulate(self):
    # We can't use accelerator.accumulate() since that checks if the dataloader is exhausted
    # and we do exhaust the eval dataloader right before each training loop
    self.mb_count += 1
    assert self.mb_count // self.num_mb <= self.config.train.total_steps, "Beyond total steps, something is wrong"
    if (
        self.mb_count % self.accelerator.gradient_accumulation_steps == 0
        or self.mb_count // self.num_mb >= self.config.train.total_steps
    ):
        context = contextlib.nullcontext
    else:
        context = self.accelerator.no_sync
    with context(self.model):
        yield
''',
)
SOURCES['fork/base.learn'] = dict(
    repo='EleutherAI/trlx', commit='126c8f0eb324eab8488f2cdddf5249dbbc28a8f5',
    path='trlx/trainer/accelerate_base_trainer.py', lines='510-635',
    text=r'''def learn(self):  # noqa: C901
    """
    Samples batches from `self.store`, updates model and periodically evaluates it on `self.eval_dataloader`
    """
    logger.info("Starting training")

    self.prepare_learning()
    self.iter_count = 0
    self.nth_evaluation = 0

    if ray.is_initialized():
        checkpoint = session.get_checkpoint()
        if checkpoint:
            with checkpoint.as_directory() as dir:
                self.accelerator.load_state(dir)

                with open(os.path.join(dir, "state.json")) as f:
                    state = json.load(f)
                    self.iter_count = state["iter_count"]
    else:
        results = self.evaluate()
        self.accelerator.log(results, step=self.iter_count)

    tbar = logging.tqdm(
        initial=self.iter_count,
        total=self.total_steps,
        disable=not self.accelerator.is_local_main_process,
        position=0,
        leave=True,
    )

    best_reward = -float("inf")

    # For each epoch
    for _ in range(self.config.train.epochs):
        # For each batch
        for mbs in MiniBatchIterator(self.train_dataloader, self.mb_size, self.num_mb):
            # For each update per batch
            for _ in range(self.n_updates_per_batch):
                # Note that whereas standard policy gradient methods perform one
                # gradient update per batch, PPO for example commonly performs
                # multiple gradient updates on the same batch of data.
                # https://arxiv.org/pdf/1707.06347.pdf
                forward_time = 0
                backward_time = 0
                stats_accum = []
                for mb in mbs:
                    with self._accumulate():
                        forward_time -= time()
                        loss, stats = self.loss(mb)
                        forward_time += time()
                        backward_time -= time()
                        self.accelerator.backward(loss)
                        backward_time += time()
                        stats_accum.append(stats)
                        self.opt.step()
                        self.opt.zero_grad()
                        self.scheduler.step()

                forward_time /= self.num_mb
                backward_time /= self.num_mb
                # TODO(Dahoas): Best way to combine stats between mbs?
                # How does accelerate do it?
                stats = {key: sum([stats[key] for stats in stats_accum]) / self.num_mb for key in stats_accum[0]}


                self.iter_count += 1

                if (
                    self.iter_count % self.config.train.checkpoint_interval == 0
                    or self.iter_count >= self.total_steps
                ):
                    subfolder = f"checkpoint_{self.iter_count:0{len(str(self.total_steps))}d}"
                    directory = os.path.join(self.config.train.checkpoint_dir, subfolder)
                    logger.info(f"Saving intermediate checkpoint into {directory}")
                    if self.config.train.save_optimizer:
                        self.save(directory)
                    else:
                        self.save_pretrained(directory)

                stats["time/forward"] = forward_time
                stats["time/backward"] = backward_time
                for group_number, lr in enumerate(self.scheduler.get_last_lr()):
                    stats[f"learning_rate_group_{group_number}"] = lr

                if self.iter_count % self.config.train.eval_interval == 0 or self.iter_count >= self.total_steps:
                    results = self.evaluate()
                    stats.update(results)
                    if ray.is_initialized():
                        session.report(filter_non_scalars(stats), checkpoint=checkpoint)

                    # always save checkpoint with the greatest mean reward
                    if self.config.train.save_best:
                        if stats.get("reward/mean", -float("inf")) > best_reward:
                            best_reward = stats.get("reward/mean")
                            do_save = True
                        # in case ILQL reports reward estimate as one of its metrics
                        elif stats.get("metrics/reward", -float("inf")) > best_reward:
                            best_reward = stats.get("metrics/reward")
                            do_save = True
                        else:
                            do_save = False
                        do_save = torch.tensor(do_save, device=self.accelerator.device)
                        if torch.distributed.is_initialized():
                            torch.distributed.all_reduce(do_save, torch.distributed.ReduceOp.MAX)
                        if do_save:
                            directory = os.path.join(self.config.train.checkpoint_dir, "best_checkpoint")
                            logger.info(f"Saving the best state so far into {directory}")
                            if self.config.train.save_optimizer:
                                self.save(directory)
                            else:
                                self.save_pretrained(directory)

                desc = " | ".join(f"{k}: {v:.2f}" for k, v in stats.items() if k.startswith("loss"))
                tbar.set_description(f"[{desc}]")
                tbar.update()

                self.accelerator.log(stats, step=self.iter_count)

                if self.iter_count >= self.total_steps:
                    return results

            self.post_backward_callback()

        self.post_epoch_callback()
    tbar.close()
''',
)
SOURCES['fork/trainer.loss'] = dict(
    repo='EleutherAI/trlx', commit='126c8f0eb324eab8488f2cdddf5249dbbc28a8f5',
    path='trlx/trainer/accelerate_ppo_trainer.py', lines='121-194',
    text=r'''def loss(self, batch: PPORLBatch):
    """Forward pass & loss

    Args:
        batch: Previous batch of episodes
    """
    # Move `batch` data to `accelerator` device
    query_tensors = batch.query_tensors.to(self.accelerator.device)
    response_tensors = batch.response_tensors.to(self.accelerator.device)
    old_logprobs = batch.logprobs.to(self.accelerator.device)
    old_values = batch.values.to(self.accelerator.device)
    old_rewards = batch.rewards.to(self.accelerator.device)
    response_length = old_rewards.shape[1]

    advantages, returns = self.config.method.get_advantages_and_returns(old_values, old_rewards, response_length)

    if self.config.model.model_arch_type == "seq2seq":
        input_ids = query_tensors
        decoder_input_ids = response_tensors
        attention_mask = input_ids.ne(self.tokenizer.pad_token_id).long().to(self.accelerator.device)
        decoder_attention_mask = (
            decoder_input_ids.ne(self.tokenizer.pad_token_id).long().to(self.accelerator.device)
        )
        decoder_attention_mask[:, 0] = 1

        # Forward pass
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
        )

        logits = outputs.logits
        values_pred = outputs.value
        logprobs = logprobs_of_labels(logits[:, :-1, :], decoder_input_ids[:, 1:])
        mask = decoder_input_ids.ne(self.tokenizer.pad_token_id).long().to(self.accelerator.device)
        start = 0
        end = start + response_length
        logprobs, values_pred, mask = (
            logprobs[:, start:end],
            values_pred[:, start:end],
            mask[:, start + 1 : end + 1],
        )
    else:
        tokens = torch.cat((query_tensors, response_tensors), dim=1)
        attention_mask = tokens.not_equal(self.tokenizer.pad_token_id).long().to(tokens.device)
        position_ids = attention_mask.long().cumsum(-1) - 1
        position_ids.masked_fill_(attention_mask == 0, 1)
        outputs = self.model(tokens, attention_mask, return_dict=True, position_ids=position_ids)
        logits = outputs.logits
        values_pred = outputs.value
        values_pred = values_pred[:, :-1]
        logprobs = logprobs_of_labels(logits[:, :-1, :], tokens[:, 1:])

        start = query_tensors.shape[1] - 1
        end = start + response_length
        logprobs, values_pred, mask = (
            logprobs[:, start:end],
            values_pred[:, start:end],
            attention_mask[:, start + 1 : end + 1],
        )

    loss, stats = self.config.method.loss(
        logprobs=logprobs,
        values=values_pred,
        old_logprobs=old_logprobs,
        old_values=old_values,
        advantages=advantages,
        returns=returns,
        mask=mask,
    )

    return loss, stats
''',
)
SOURCES['fork/trainer.post_epoch_callback'] = dict(
    repo='EleutherAI/trlx', commit='126c8f0eb324eab8488f2cdddf5249dbbc28a8f5',
    path='trlx/trainer/accelerate_ppo_trainer.py', lines='209-218',
    text=r'''def post_epoch_callback(self):
    """Post epoch callback

    Clears the store and creates `num_rollouts` new episodes.
    """
    if self.log_rollouts:
        self.store.export_history(location=self.rollout_logging_dir)
    self.store.clear_history()
    # Collect more rollouts for training
    self.make_experience(self.config.method.num_rollouts, self.iter_count)
''',
)
SOURCES['fork/trainer.post_backward_callback'] = dict(
    repo='EleutherAI/trlx', commit='126c8f0eb324eab8488f2cdddf5249dbbc28a8f5',
    path='trlx/trainer/accelerate_ppo_trainer.py', lines='220-221',
    text=r'''def post_backward_callback(self):
    self.kl_ctl.update(self.mean_kl, n_steps=self.config.train.batch_size)
''',
)
SOURCES['fork/trainer.prepare_learning'] = dict(
    repo='EleutherAI/trlx', commit='126c8f0eb324eab8488f2cdddf5249dbbc28a8f5',
    path='trlx/trainer/accelerate_ppo_trainer.py', lines='223-233',
    text=r'''def prepare_learning(self):
    eval_dataloader = self.eval_pipeline.create_loader(self.config.method.chunk_size)
    self.eval_dataloader = self.accelerator.prepare_data_loader(eval_dataloader)

    self.make_experience(self.config.method.num_rollouts)

    self.train_dataloader = self.store.create_loader(self.config.train.batch_size, shuffle=False)

    self.n_updates_per_batch = self.config.method.ppo_epochs
    self.total_steps = self.config.train.epochs * self.n_updates_per_batch * len(self.train_dataloader)
    self.total_steps = min(self.total_steps, self.config.train.total_steps)
''',
)
SOURCES['fork/me.clip'] = dict(
    repo='EleutherAI/trlx', commit='126c8f0eb324eab8488f2cdddf5249dbbc28a8f5',
    path='trlx/trainer/accelerate_ppo_trainer.py', lines='340-341',
    text=r'''if self.config.method.cliprange_reward:
    scores = torch.clip(scores, -self.config.method.cliprange_reward, self.config.method.cliprange_reward)
''',
)
SOURCES['fork/me.moments_and_scale'] = dict(
    repo='EleutherAI/trlx', commit='126c8f0eb324eab8488f2cdddf5249dbbc28a8f5',
    path='trlx/trainer/accelerate_ppo_trainer.py', lines='343-355',
    text=r'''# store statistics of the initial rollout as reference
if self.ref_mean is None:
    self.ref_mean, self.ref_std = scores.mean(), scores.std()
all_scores_mean, all_scores_std = self.running_moments.update(scores)
stats["rollout_scores/mean"] = all_scores_mean.item()
stats["rollout_scores/std"] = all_scores_std.item()
stats["rollout_scores/running_mean"] = self.running_moments.mean.item()
stats["rollout_scores/running_std"] = self.running_moments.std.item()

if self.config.method.scale_reward == "running":
    scores /= self.running_moments.std
elif self.config.method.scale_reward == "ref":
    scores /= self.ref_std
''',
)
SOURCES['fork/me.tokens'] = dict(
    repo='EleutherAI/trlx', commit='126c8f0eb324eab8488f2cdddf5249dbbc28a8f5',
    path='trlx/trainer/accelerate_ppo_trainer.py', lines='389-392',
    text=r'''all_tokens = torch.cat((prompt_tensors.to(device), sample_outputs), dim=1)
attention_mask = all_tokens.not_equal(self.tokenizer.pad_token_id).long().to(device)
position_ids = attention_mask.long().cumsum(-1) - 1
position_ids.masked_fill_(attention_mask == 0, 1)
''',
)
SOURCES['fork/me.kl_and_rewards'] = dict(
    repo='EleutherAI/trlx', commit='126c8f0eb324eab8488f2cdddf5249dbbc28a8f5',
    path='trlx/trainer/accelerate_ppo_trainer.py', lines='414-467',
    text=r'''if self.config.model.model_arch_type == "seq2seq":
    logprobs = logprobs_of_labels(logits[:, :-1, :], sample_outputs[:, 1:])
    ref_logprobs = logprobs_of_labels(ref_logits[:, :-1, :], sample_outputs[:, 1:])
else:
    logprobs = logprobs_of_labels(logits[:, :-1, :], all_tokens[:, 1:])
    ref_logprobs = logprobs_of_labels(ref_logits[:, :-1, :], all_tokens[:, 1:])

n_samples: int = samples.shape[0]

# Estimate the KL divergence between the model and reference model
if self.config.model.model_arch_type == "seq2seq":
    attention_mask = sample_outputs != self.tokenizer.pad_token_id
    start = 0
else:
    start = prompt_tensors.shape[1] - 1

log_ratio = (logprobs - ref_logprobs) * attention_mask[:, :-1]
kl = log_ratio.exp() - 1 - log_ratio
mean_kl_per_token = kl.mean()
mean_kl = kl.sum(1).mean()

logprobs = logprobs.cpu()
ref_logprobs = ref_logprobs.cpu()
prompt_tensors = prompt_tensors.cpu()
sample_outputs = sample_outputs.cpu()
values = values.cpu()[:, :-1]

# Get the logprobs and values, for tokens that are not padding,
# from the start of the prompt up to the <eos> token, while also including the latter
# (these are taken from the student model and not the reference model)
ends = start + attention_mask[:, start:].sum(1) + 1
all_values = [values[ix, start : ends[ix]] for ix in range(n_samples)]
all_logprobs = [logprobs[ix, start : ends[ix]] for ix in range(n_samples)]

kl_penalty = self.kl_ctl.value * -log_ratio.cpu()
kl_penalty = [xs[start : ends[ix]] for ix, xs in enumerate(kl_penalty)]

rollout_count = 0

for sample_idx in range(n_samples):
    rewards = kl_penalty[sample_idx]
    rewards[-1] += scores[sample_idx].cpu()

    ppo_rl_elements.append(
        PPORLElement(
            query_tensor=prompt_tensors[sample_idx],
            response_tensor=sample_outputs[sample_idx],
            logprobs=all_logprobs[sample_idx],
            values=all_values[sample_idx],
            rewards=rewards,
        )
    )

    rollout_count += 1
''',
)
SOURCES['fork/me.chunk_stats'] = dict(
    repo='EleutherAI/trlx', commit='126c8f0eb324eab8488f2cdddf5249dbbc28a8f5',
    path='trlx/trainer/accelerate_ppo_trainer.py', lines='469-475',
    text=r'''if torch.distributed.is_initialized():
    torch.distributed.all_reduce(mean_kl, torch.distributed.ReduceOp.AVG)

stats["time/rollout_time"] = clock.tick()
stats["policy/sqrt_kl"] = torch.sqrt(mean_kl).item()
stats["policy/kl_per_token"] = torch.sqrt(mean_kl_per_token).item()
accumulated_stats.append(stats)
''',
)
SOURCES['fork/me.final_stats'] = dict(
    repo='EleutherAI/trlx', commit='126c8f0eb324eab8488f2cdddf5249dbbc28a8f5',
    path='trlx/trainer/accelerate_ppo_trainer.py', lines='481-483',
    text=r'''stats = {k: sum([xs[k] for xs in accumulated_stats]) / len(accumulated_stats) for k in stats}
stats["kl_ctl_value"] = self.kl_ctl.value
self.mean_kl = stats["policy/sqrt_kl"] ** 2
''',
)
SOURCES['main/utils.whiten'] = dict(
    repo='CarperAI/trlx', commit='3340c2f3a56d1d14fdd5f13ad575121fa26b6d92',
    path='trlx/utils/modeling.py', lines='200-210',
    text=r'''def whiten(xs: torch.Tensor, shift_mean=True, distributed=True, group=None) -> torch.Tensor:
    """Whitens values"""
    if distributed and dist.is_initialized():
        mean, var, _ = get_global_statistics(xs, group=group)
    else:
        var, mean = torch.var_mean(xs)

    whitened = (xs - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        whitened += mean
    return whitened
''',
)
SOURCES['main/utils.logprobs_of_labels'] = dict(
    repo='CarperAI/trlx', commit='3340c2f3a56d1d14fdd5f13ad575121fa26b6d92',
    path='trlx/utils/modeling.py', lines='213-219',
    text=r'''def logprobs_of_labels(logits, labels):
    """Log probabilities of the labels

    These are calculated from the logits."""
    logprobs = F.log_softmax(logits, dim=-1)
    logprobs_labels = torch.gather(logprobs, dim=-1, index=labels.unsqueeze(-1))
    return logprobs_labels.squeeze(-1)
''',
)
SOURCES['main/utils.flatten_dict'] = dict(
    repo='CarperAI/trlx', commit='3340c2f3a56d1d14fdd5f13ad575121fa26b6d92',
    path='trlx/utils/modeling.py', lines='222-235',
    text=r'''def flatten_dict(
    d: Union[dict, MutableMapping],
    parent_key: str = "",
    sep: str = "/",
) -> dict:
    # From: https://stackoverflow.com/a/6027615
    items = []
    for k, v in d.items():
        new_key = parent_key + sep + k if parent_key else k
        if isinstance(v, MutableMapping):
            items.extend(flatten_dict(v, new_key, sep=sep).items())
        else:
            items.append((new_key, v))
    return dict(items)
''',
)
SOURCES['main/utils.get_tensor_stats'] = dict(
    repo='CarperAI/trlx', commit='3340c2f3a56d1d14fdd5f13ad575121fa26b6d92',
    path='trlx/utils/modeling.py', lines='262-272',
    text=r'''def get_tensor_stats(xs: torch.Tensor, mask: torch.Tensor, n: int):
    if xs.numel() == 0:
        return dict(mean=0, min=0, max=0, std=0)

    mean = (xs * mask).sum() / n
    return dict(
        mean=mean,
        min=torch.where(mask.bool(), xs, np.inf).min(),
        max=torch.where(mask.bool(), xs, -np.inf).max(),
        std=torch.sqrt(((xs - mean) * mask).pow(2).sum() / n),
    )
''',
)
SOURCES['main/utils.RunningMoments'] = dict(
    repo='CarperAI/trlx', commit='3340c2f3a56d1d14fdd5f13ad575121fa26b6d92',
    path='trlx/utils/modeling.py', lines='275-307',
    text=r'''class RunningMoments:
    def __init__(self):
        """
        Calculates the running mean and standard deviation of a data stream. Modified version of
        https://github.com/DLR-RM/stable-baselines3/blob/a6f5049a99a4c21a6f0bcce458ca3306cef310e0/stable_baselines3/common/running_mean_std.py
        """
        self.mean = 0
        self.std = 1
        self.var = 1
        self.count = 1e-24

    def update(self, xs: torch.Tensor) -> Tuple[float, float]:
        """Updates running moments from batch's moments computed across ranks"""
        if dist.is_initialized():
            xs_mean, xs_var, xs_count = get_global_statistics(xs)
        else:
            xs_count = xs.numel()
            xs_var, xs_mean = torch.var_mean(xs, unbiased=False)

        delta = xs_mean - self.mean
        tot_count = self.count + xs_count

        new_sum = xs_var * xs_count
        # correct old_sum deviation accounting for the new mean
        old_sum = self.var * self.count + delta**2 * self.count * xs_count / tot_count
        tot_sum = old_sum + new_sum

        self.mean += delta * xs_count / tot_count
        self.var = tot_sum / tot_count
        self.std = (self.var * tot_count / (tot_count - 1)).sqrt()
        self.count = tot_count

        return xs_mean, (xs_var * xs_count / (xs_count - 1)).sqrt()
''',
)
SOURCES['main/ppo.AdaptiveKLController'] = dict(
    repo='CarperAI/trlx', commit='3340c2f3a56d1d14fdd5f13ad575121fa26b6d92',
    path='trlx/models/modeling_ppo.py', lines='35-53',
    text=r'''class AdaptiveKLController:
    """Adaptive KL Controller as described in Ziegler et al. "Fine-Tuning Language Models from Human Preferences"
    Reference: Section 2.2 https://arxiv.org/pdf/1909.08593.pdf#page=2
    Source: https://github.com/openai/lm-human-preferences/blob/master/lm_human_preferences/train_policy.py
    """

    def __init__(self, init_kl_coef: float, target: float, horizon: int):
        self.value = init_kl_coef
        self.target = target
        self.horizon = horizon

    def update(self, current: float, n_steps: int):
        """Returns adaptively updated KL coefficient, βₜ₊₁.
        Arguments:
            current: The current KL value between the newest policy and the initial policy.
        """
        proportional_error = np.clip(current / self.target - 1, -0.2, 0.2)  # ϵₜ
        mult = 1 + proportional_error * n_steps / self.horizon
        self.value *= mult  # βₜ₊₁
''',
)
SOURCES['main/ppo.FixedKLController'] = dict(
    repo='CarperAI/trlx', commit='3340c2f3a56d1d14fdd5f13ad575121fa26b6d92',
    path='trlx/models/modeling_ppo.py', lines='56-67',
    text=r'''class FixedKLController:
    """Fixed KL controller."""

    def __init__(self, kl_coef):
        self.value = kl_coef

    def update(self, current: float, n_steps: int):
        """Returns updated KL coefficient, βₜ₊₁.
        Arguments:
            current: The current KL value between the newest policy and the initial policy.
        """
        pass
''',
)
SOURCES['main/ppo.PPOConfig.get_advantages_and_returns'] = dict(
    repo='CarperAI/trlx', commit='3340c2f3a56d1d14fdd5f13ad575121fa26b6d92',
    path='trlx/models/modeling_ppo.py', lines='136-173',
    text=r'''def get_advantages_and_returns(
    self,
    values: TensorType["batch_size", "response_size"],
    rewards: TensorType["batch_size", "response_size"],
    response_length: int,
    use_whitening: Optional[bool] = True,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Function that computes advantages and returns from rewards and values.
    Calculated as in the original PPO paper: https://arxiv.org/abs/1707.06347
    Note that rewards may include a KL divergence loss term.

    Advantages looks like this:
    Adv1 =  R1 + γ * λ * R2     + γ^2 * λ^2 * R3       + ...
          - V1 + γ * (1 - λ) V2 + γ^2 * λ * (1 - λ) V3 + ...

    Returns looks like this:
    Ret1 =  R1 + γ * λ * R2     + γ^2 * λ^2 * R3       + ...
               + γ * (1 - λ) V2 + γ^2 * λ * (1 - λ) V3 + ...

    Args:
        values: Tensor of shape (batch_size, response_size)
        rewards: Tensor of shape (batch_size, response_size)
        response_length: Length of the response sequence
        use_whitening: Whether to use whitening (ie. normalize advantages) or not
    """
    lastgaelam = 0
    advantages_reversed = []

    for t in reversed(range(response_length)):
        nextvalues = values[:, t + 1] if t < response_length - 1 else 0.0
        delta = rewards[:, t] + self.gamma * nextvalues - values[:, t]
        lastgaelam = delta + self.gamma * self.lam * lastgaelam
        advantages_reversed.append(lastgaelam)
    advantages = torch.stack(advantages_reversed[::-1], dim=1)
    returns = advantages + values
    if use_whitening:
        advantages = whiten(advantages)
    return advantages.detach(), returns
''',
)
SOURCES['main/ppo.PPOConfig.loss'] = dict(
    repo='CarperAI/trlx', commit='3340c2f3a56d1d14fdd5f13ad575121fa26b6d92',
    path='trlx/models/modeling_ppo.py', lines='175-238',
    text=r'''def loss(
    self,
    logprobs: TensorType["batch_size", "response_size"],
    values: TensorType["batch_size", "response_size"],
    old_logprobs: TensorType["batch_size", "response_size"],
    old_values: TensorType["batch_size", "response_size"],
    advantages: TensorType["batch_size", "response_size"],
    returns: TensorType["batch_size", "response_size"],
    mask: TensorType["batch_size", "response_size"],
):
    """PPO objective function.
    References:
    - https://stable-baselines.readthedocs.io/en/master/modules/ppo2.html
    """
    values_clipped = torch.clamp(
        values,
        old_values - self.cliprange_value,
        old_values + self.cliprange_value,
    )
    n = mask.sum()

    vf_loss1 = (values - returns) ** 2
    vf_loss2 = (values_clipped - returns) ** 2
    vf_loss = 0.5 * torch.sum(torch.max(vf_loss1, vf_loss2) * mask) / n

    vf_clipfrac = torch.sum((vf_loss2 > vf_loss1).float() * mask) / n

    log_ratio = (logprobs - old_logprobs) * mask
    ratio = torch.exp(log_ratio)
    # Unbiased KL-div estimates (`k3`). Ref: http://joschu.net/blog/kl-approx.html
    with torch.no_grad():
        approx_kl = torch.mean((ratio - 1) - log_ratio)

    pg_loss1 = -advantages * ratio
    pg_loss2 = -advantages * torch.clamp(
        ratio,
        1.0 - self.cliprange,
        1.0 + self.cliprange,
    )
    pg_loss = torch.sum(torch.max(pg_loss1, pg_loss2) * mask) / n
    pg_clipfrac = torch.sum((pg_loss2 > pg_loss1).float() * mask) / n

    loss = pg_loss + self.vf_coef * vf_loss

    stats = dict(
        losses=dict(
            total_loss=loss.item(),
            policy_loss=pg_loss.item(),
            value_loss=vf_loss.item(),
        ),
        values=dict(
            get_tensor_stats(values, mask, n),
            values_error=torch.sum(((values - returns) * mask) ** 2) / n,
            values_mape_error=torch.sum((abs(values - returns) * mask) / abs(returns * mask + 1e-2)) / n,
            clipfrac=vf_clipfrac,
        ),
        old_values=get_tensor_stats(old_values, mask, n),
        returns=get_tensor_stats(returns, mask, n),
        policy=dict(approx_kl=approx_kl.item(), clipfrac=pg_clipfrac.item()),
        ratio=(ratio * mask).sum() / n,
        padding_percentage=1 - n / mask.numel(),
    )

    return loss, flatten_dict(stats)
''',
)
SOURCES['main/types.PPORLElement'] = dict(
    repo='CarperAI/trlx', commit='3340c2f3a56d1d14fdd5f13ad575121fa26b6d92',
    path='trlx/data/ppo_types.py', lines='6-35',
    text=r'''@dataclass
class PPORLElement:
    """
    :param query_tensor: The query tensor i.e. the prompt tokens.
                         Should be a long tensor.
    :type query_tensor: torch.Tensor

    :param response_tensor: The response tensor i.e. the output tokens.
                            Should be a long tensor.
    :type response_tensor: torch.Tensor

    :param logprobs: The log probabilities over the response tokens generated
                    by the policy network (i.e. the autoregressive model).
                    Should be a float tensor of same size as tokens.
    :type logprobs: torch.Tensor

    :param values: The values for each token generated from the value network or value head.
                    Should be a float tensor of same size as tokens.
    :type values: torch.Tensor

    :param rewards: The rewards for each token outputted in response.
                    Should be a float tensor of same size as tokens.
    :type rewards: torch.Tensor
    """

    query_tensor: TensorType["query_size"]
    response_tensor: TensorType["response_size"]
    logprobs: TensorType["response_size"]
    values: TensorType["response_size"]
    rewards: TensorType["response_size"]
''',
)
SOURCES['main/types.PPORLBatch'] = dict(
    repo='CarperAI/trlx', commit='3340c2f3a56d1d14fdd5f13ad575121fa26b6d92',
    path='trlx/data/ppo_types.py', lines='38-63',
    text=r'''@dataclass
class PPORLBatch:
    """
    A batched version of the PPORLElement. See PPORLElement for more details on individual fields.

    :param query_tensors: A batch of query tensors. Should be a long tensor.
    :type query_tensors: torch.Tensor

    :param response_tensors: A batch of response tensors. Should be a long tensor.
    :type response_tensors: torch.Tensor

    :param logprobs: A batch of log probabilities from policy
    :type logprobs: torch.Tensor

    :param values: A batch of values from value network
    :type values: torch.Tensor

    :param rewards: A batch of rewards
    :type rewards: torch.Tensor
    """

    query_tensors: TensorType["batch_size", "query_size"]
    response_tensors: TensorType["batch_size", "response_size"]
    logprobs: TensorType["batch_size", "response_size"]
    values: TensorType["batch_size", "response_size"]
    rewards: TensorType["batch_size", "response_size"]
''',
)
SOURCES['main/pipeline.ppo_collate_fn'] = dict(
    repo='CarperAI/trlx', commit='3340c2f3a56d1d14fdd5f13ad575121fa26b6d92',
    path='trlx/pipeline/ppo_pipeline.py', lines='14-50',
    text=r'''def ppo_collate_fn(padding_side: str, pad_token_id: int, elems: Iterable[PPORLElement]):
    if padding_side == "left":
        # Left padding of already left-padded queries
        query_tensors = pad_sequence(
            [elem.query_tensor.flip(0) for elem in elems],
            padding_value=pad_token_id,
            batch_first=True,
        ).flip(1)
    elif padding_side == "right":
        query_tensors = pad_sequence(
            [elem.query_tensor for elem in elems],
            padding_value=pad_token_id,
            batch_first=True,
        )
    else:
        raise ValueError(f"Invalid padding side: {padding_side}")

    return PPORLBatch(
        query_tensors,
        # Right pad the rest, to have a single horizontal query/response split
        pad_sequence(
            [elem.response_tensor for elem in elems],
            padding_value=pad_token_id,
            batch_first=True,
        ),
        pad_sequence(
            [elem.logprobs for elem in elems],
            padding_value=0.0,
            batch_first=True,
        ),
        pad_sequence([elem.values for elem in elems], padding_value=0.0, batch_first=True),
        pad_sequence(
            [elem.rewards for elem in elems],
            padding_value=0.0,
            batch_first=True,
        ),
    )
''',
)
SOURCES['main/pipeline.MiniBatchIterator'] = dict(
    repo='CarperAI/trlx', commit='3340c2f3a56d1d14fdd5f13ad575121fa26b6d92',
    path='trlx/pipeline/__init__.py', lines='105-177',
    text=r'''class MiniBatchIterator:
    """
    A custom iterator for generating mini-batches from a PyTorch DataLoader.
    """

    def __init__(self, data_loader, mb_size, num_mb):
        """
        Initializes the MiniBatchIterator.

        Args:
            data_loader (torch.utils.data.DataLoader): The DataLoader to generate mini-batches from.
            mb_size (int): The size of each mini-batch.
            num_mb (int): The number of mini-batches to generate for each iteration.
        """
        self.data_loader = data_loader
        self.data_loader_iter = iter(data_loader)
        self.mb_size = mb_size
        self.num_mb = num_mb

    def __iter__(self):
        return self

    def __next__(self):  # noqa: C901
        batch = next(self.data_loader_iter)
        if batch is None:
            logger.warning(
                "WARNING: Not enough samples to saturate the minibatch size. Increase the number "
                "of prompts or samples or decrease the minibatch size."
            )
            raise StopIteration

        minibatches = []

        for mbi in range(self.num_mb):
            sliced_data = {}
            batch_dict = batch
            if is_dataclass(batch):
                batch_dict = batch.__dict__
            for key, value in batch_dict.items():
                start_idx = mbi * self.mb_size
                end_idx = (mbi + 1) * self.mb_size
                sliced_data[key] = value[start_idx:end_idx]

                if self.num_mb > 1 and len(sliced_data[key]) == 0:
                    logger.warning(
                        "WARNING: MiniBatchIterator generated a minibatch with 0 elements. "
                        "This may be due to the wrong mb_size and/or num_mb or the last batch"
                        "in the dataset being smaller."
                    )
                    sliced_data.pop(key)
                    break
                elif self.num_mb > 1 and len(sliced_data[key]) < self.mb_size:
                    logger.warning(
                        "WARNING: MiniBatchIterator generated a minibatch with fewer elements than mb_size. "
                        "This may be due to the wrong mb_size and/or num_mb or the last batch in the dataset "
                        "being smaller."
                    )
            if not sliced_data:
                break

            if isinstance(batch, BatchEncoding):
                minibatch = BatchEncoding(sliced_data)
            elif is_dataclass(batch):
                minibatch = batch.__class__(**sliced_data)
            # else:
            #     minibatch = sliced_data

            minibatches.append(minibatch)

        if not minibatches:
            raise StopIteration

        return minibatches
''',
)
SOURCES['main/base.accumulate'] = dict(
    repo='CarperAI/trlx', commit='3340c2f3a56d1d14fdd5f13ad575121fa26b6d92',
    path='trlx/trainer/accelerate_base_trainer.py', lines='502-516',
    text=r'''@contextmanager
def _accumulate(self):
    # We can't use accelerator.accumulate() since that checks if the dataloader is exhausted
    # and we do exhaust the eval dataloader right before each training loop
    self.mb_count += 1
    assert self.mb_count // self.num_mb <= self.config.train.total_steps, "Beyond total steps, something is wrong"
    if (
        self.mb_count % self.accelerator.gradient_accumulation_steps == 0
        or self.mb_count // self.num_mb >= self.config.train.total_steps
    ):
        context = contextlib.nullcontext
    else:
        context = self.accelerator.no_sync
    with context(self.model):
        yield
''',
)
SOURCES['main/base.learn'] = dict(
    repo='CarperAI/trlx', commit='3340c2f3a56d1d14fdd5f13ad575121fa26b6d92',
    path='trlx/trainer/accelerate_base_trainer.py', lines='518-652',
    text=r'''def learn(self):  # noqa: C901
    """
    Samples batches from `self.store`, updates model and periodically evaluates it on `self.eval_dataloader`
    """
    logger.info("Starting training")

    self.prepare_learning()
    self.iter_count = 0
    self.nth_evaluation = 0

    if ray.is_initialized():
        checkpoint = session.get_checkpoint()
        if checkpoint:
            with checkpoint.as_directory() as dir:
                self.accelerator.load_state(dir)

                with open(os.path.join(dir, "state.json")) as f:
                    state = json.load(f)
                    self.iter_count = state["iter_count"]
    else:
        results = self.evaluate()
        self.accelerator.log(results, step=self.iter_count)

    tbar = logging.tqdm(
        initial=self.iter_count,
        total=self.total_steps,
        disable=not self.accelerator.is_local_main_process,
        position=0,
        leave=True,
    )

    best_reward = -float("inf")

    # For each epoch
    for _ in range(self.config.train.epochs):
        # For each ppo epoch
        for _ in range(self.n_inner_epochs):
            # Note that whereas standard policy gradient methods perform one
            # gradient update per batch, PPO for example commonly performs
            # multiple epochs of gradient updates on the same batch of data.
            # https://arxiv.org/pdf/1707.06347.pdf

            # We create a new dataloader (so new data ordering and shuffle) each inner epoch
            train_dataloader = self.create_train_dataloader()
            # For each batch
            for minibatch in MiniBatchIterator(train_dataloader, self.mb_size, self.num_mb):
                forward_time = 0.0
                backward_time = 0.0
                stats_accum = []
                for microbatch in minibatch:
                    with self._accumulate():
                        forward_time -= time()
                        loss, stats = self.loss(microbatch)
                        forward_time += time()
                        backward_time -= time()
                        self.model.train()
                        self.accelerator.backward(loss)
                        self.model.eval()
                        backward_time += time()
                        stats_accum.append(stats)

                forward_time /= self.num_mb
                backward_time /= self.num_mb
                # TODO(Dahoas): Best way to combine stats between mbs?
                # How does accelerate do it?
                stats = {key: sum([stats[key] for stats in stats_accum]) / self.num_mb for key in stats_accum[0]}

                self.opt.step()
                self.opt.zero_grad()
                self.scheduler.step()
                self.iter_count += 1

                if (
                    self.iter_count % self.config.train.checkpoint_interval == 0
                    or self.iter_count >= self.total_steps
                ):
                    subfolder = f"checkpoint_{self.iter_count:0{len(str(self.total_steps))}d}"
                    directory = os.path.join(self.config.train.checkpoint_dir, subfolder)
                    if self.config.train.save_optimizer:
                        logger.info(f"Saving intermediate optimizer & model checkpoint into {directory}")
                        self.save(directory)

                    pretrained_directory = os.path.join(directory, "hf_model")
                    logger.info(f"Saving pretrained model into {pretrained_directory}")
                    self.save_pretrained(pretrained_directory)

                stats["time/forward"] = forward_time
                stats["time/backward"] = backward_time
                for group_number, lr in enumerate(self.scheduler.get_last_lr()):
                    stats[f"learning_rate_group_{group_number}"] = lr

                if self.iter_count % self.config.train.eval_interval == 0 or self.iter_count >= self.total_steps:
                    results = self.evaluate()
                    stats.update(results)
                    if ray.is_initialized():
                        session.report(filter_non_scalars(stats), checkpoint=checkpoint)

                    # always save checkpoint with the greatest mean reward
                    if self.config.train.save_best:
                        if stats.get("reward/mean", -float("inf")) > best_reward:
                            best_reward = stats.get("reward/mean")
                            do_save = True
                        # in case ILQL reports reward estimate as one of its metrics
                        elif stats.get("metrics/reward", -float("inf")) > best_reward:
                            best_reward = stats.get("metrics/reward")
                            do_save = True
                        else:
                            do_save = False
                        do_save = torch.tensor(do_save, device=self.accelerator.device)
                        if torch.distributed.is_initialized():
                            torch.distributed.all_reduce(do_save, torch.distributed.ReduceOp.MAX)
                        if do_save:
                            directory = os.path.join(self.config.train.checkpoint_dir, "best_checkpoint")

                            if self.config.train.save_optimizer:
                                logger.info(f"Saving intermediate optimizer & model checkpoint into {directory}")
                                self.save(directory)

                            pretrained_directory = os.path.join(directory, "hf_model")
                            logger.info(f"Saving pretrained model into {pretrained_directory}")
                            self.save_pretrained(pretrained_directory)

                desc = " | ".join(f"{k}: {v:.2f}" for k, v in stats.items() if k.startswith("loss"))
                tbar.set_description(f"[{desc}]")
                tbar.update()

                self.accelerator.log(stats, step=self.iter_count)

                if self.iter_count >= self.total_steps:
                    return results

            self.post_backward_callback()

        self.post_epoch_callback()
    tbar.close()
''',
)
SOURCES['main/trainer.loss'] = dict(
    repo='CarperAI/trlx', commit='3340c2f3a56d1d14fdd5f13ad575121fa26b6d92',
    path='trlx/trainer/accelerate_ppo_trainer.py', lines='127-204',
    text=r'''def loss(self, batch: PPORLBatch) -> Tuple[float, Dict[str, Any]]:
    """Computes loss on a batch of data and returns statistics

    Args:
        batch: `PPORLBatch` Previous batch of episodes

    Returns:
        loss: `Float` Loss value
        stats: `Dict[str, Any]` PPO Statistics values
    """
    # Move `batch` data to `accelerator` device
    query_tensors = batch.query_tensors.to(self.accelerator.device)
    response_tensors = batch.response_tensors.to(self.accelerator.device)
    old_logprobs = batch.logprobs.to(self.accelerator.device)
    old_values = batch.values.to(self.accelerator.device)
    old_rewards = batch.rewards.to(self.accelerator.device)
    response_length = old_rewards.shape[1]

    advantages, returns = self.config.method.get_advantages_and_returns(old_values, old_rewards, response_length)

    if self.config.model.model_arch_type == "seq2seq":
        input_ids = query_tensors
        decoder_input_ids = response_tensors
        attention_mask = input_ids.ne(self.tokenizer.pad_token_id).long().to(self.accelerator.device)
        decoder_attention_mask = (
            decoder_input_ids.ne(self.tokenizer.pad_token_id).long().to(self.accelerator.device)
        )
        decoder_attention_mask[:, 0] = 1

        # Forward pass
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
        )

        logits = outputs.logits
        values_pred = outputs.value
        logprobs = logprobs_of_labels(logits[:, :-1, :], decoder_input_ids[:, 1:])
        mask = decoder_input_ids.ne(self.tokenizer.pad_token_id).long().to(self.accelerator.device)
        start = 0
        end = start + response_length
        logprobs, values_pred, mask = (
            logprobs[:, start:end],
            values_pred[:, start:end],
            mask[:, start + 1 : end + 1],
        )
    else:
        tokens = torch.cat((query_tensors, response_tensors), dim=1)
        attention_mask = tokens.not_equal(self.tokenizer.pad_token_id).long().to(tokens.device)
        position_ids = attention_mask.long().cumsum(-1) - 1
        position_ids.masked_fill_(attention_mask == 0, 1)
        outputs = self.model(tokens, attention_mask, return_dict=True, position_ids=position_ids)
        logits = outputs.logits
        values_pred = outputs.value
        values_pred = values_pred[:, :-1]
        logprobs = logprobs_of_labels(logits[:, :-1, :], tokens[:, 1:])

        start = query_tensors.shape[1] - 1
        end = start + response_length
        logprobs, values_pred, mask = (
            logprobs[:, start:end],
            values_pred[:, start:end],
            attention_mask[:, start + 1 : end + 1],
        )

    loss, stats = self.config.method.loss(
        logprobs=logprobs,
        values=values_pred,
        old_logprobs=old_logprobs,
        old_values=old_values,
        advantages=advantages,
        returns=returns,
        mask=mask,
    )

    return loss, stats
''',
)
SOURCES['main/trainer.post_epoch_callback'] = dict(
    repo='CarperAI/trlx', commit='3340c2f3a56d1d14fdd5f13ad575121fa26b6d92',
    path='trlx/trainer/accelerate_ppo_trainer.py', lines='219-225',
    text=r'''def post_epoch_callback(self):
    """Clears the rollout store and creates `num_rollouts` new samples"""
    if self.log_rollouts:
        self.store.export_history(location=self.rollout_logging_dir)
    self.store.clear_history()
    # Collect more rollouts for training
    self.make_experience(self.config.method.num_rollouts, self.iter_count)
''',
)
SOURCES['main/trainer.post_backward_callback'] = dict(
    repo='CarperAI/trlx', commit='3340c2f3a56d1d14fdd5f13ad575121fa26b6d92',
    path='trlx/trainer/accelerate_ppo_trainer.py', lines='227-228',
    text=r'''def post_backward_callback(self):
    self.kl_ctl.update(self.mean_kl, n_steps=self.config.train.batch_size)
''',
)
SOURCES['main/trainer.prepare_learning'] = dict(
    repo='CarperAI/trlx', commit='3340c2f3a56d1d14fdd5f13ad575121fa26b6d92',
    path='trlx/trainer/accelerate_ppo_trainer.py', lines='233-243',
    text=r'''def prepare_learning(self):
    eval_dataloader = self.eval_pipeline.create_loader(self.config.method.chunk_size)
    self.eval_dataloader = self.accelerator.prepare_data_loader(eval_dataloader)

    self.make_experience(self.config.method.num_rollouts)

    self.train_dataloader = self.create_train_dataloader()

    self.n_inner_epochs = self.config.method.ppo_epochs
    self.total_steps = self.config.train.epochs * self.n_inner_epochs * len(self.train_dataloader)
    self.total_steps = min(self.total_steps, self.config.train.total_steps)
''',
)
SOURCES['main/me.clip'] = dict(
    repo='CarperAI/trlx', commit='3340c2f3a56d1d14fdd5f13ad575121fa26b6d92',
    path='trlx/trainer/accelerate_ppo_trainer.py', lines='364-365',
    text=r'''if self.config.method.cliprange_reward:
    scores = torch.clip(scores, -self.config.method.cliprange_reward, self.config.method.cliprange_reward)
''',
)
SOURCES['main/me.moments_and_scale'] = dict(
    repo='CarperAI/trlx', commit='3340c2f3a56d1d14fdd5f13ad575121fa26b6d92',
    path='trlx/trainer/accelerate_ppo_trainer.py', lines='367-381',
    text=r'''# store statistics of the initial rollout as reference
if self.ref_mean is None:
    self.ref_mean, self.ref_std = (scores * scores_mask).sum(dim=1).mean(), (scores * scores_mask).sum(
        dim=1
    ).std()
all_scores_mean, all_scores_std = self.running_moments.update(torch.sum(scores * scores_mask, dim=1))
stats["rollout_scores/mean"] = all_scores_mean.item()
stats["rollout_scores/std"] = all_scores_std.item()
stats["rollout_scores/running_mean"] = self.running_moments.mean.item()
stats["rollout_scores/running_std"] = self.running_moments.std.item()

if self.config.method.scale_reward == "running":
    scores /= self.running_moments.std
elif self.config.method.scale_reward == "ref":
    scores /= self.ref_std
''',
)
SOURCES['main/me.tokens'] = dict(
    repo='CarperAI/trlx', commit='3340c2f3a56d1d14fdd5f13ad575121fa26b6d92',
    path='trlx/trainer/accelerate_ppo_trainer.py', lines='415-418',
    text=r'''all_tokens = torch.cat((prompt_tensors.to(device), sample_outputs), dim=1)
attention_mask = all_tokens.not_equal(self.tokenizer.pad_token_id).long().to(device)
position_ids = attention_mask.long().cumsum(-1) - 1
position_ids.masked_fill_(attention_mask == 0, 1)
''',
)
SOURCES['main/me.kl_and_rewards'] = dict(
    repo='CarperAI/trlx', commit='3340c2f3a56d1d14fdd5f13ad575121fa26b6d92',
    path='trlx/trainer/accelerate_ppo_trainer.py', lines='440-504',
    text=r'''if self.config.model.model_arch_type == "seq2seq":
    logprobs = logprobs_of_labels(logits[:, :-1, :], sample_outputs[:, 1:])
    ref_logprobs = logprobs_of_labels(ref_logits[:, :-1, :], sample_outputs[:, 1:])
else:
    # NOTE: logprob[i] is (log)prob at which all_token[i+1] was sampled
    logprobs = logprobs_of_labels(logits[:, :-1, :], all_tokens[:, 1:])
    ref_logprobs = logprobs_of_labels(ref_logits[:, :-1, :], all_tokens[:, 1:])

n_samples: int = samples.shape[0]

# Estimate the KL divergence between the model and reference model
if self.config.model.model_arch_type == "seq2seq":
    attention_mask = sample_outputs != self.tokenizer.pad_token_id
    start = 0
else:
    start = prompt_tensors.shape[1] - 1

log_ratio = (logprobs - ref_logprobs) * attention_mask[:, :-1]
kl = log_ratio.exp() - 1 - log_ratio
mean_kl_per_token = kl.mean()
mean_kl = kl.sum(1).mean()

logprobs = logprobs.cpu()
ref_logprobs = ref_logprobs.cpu()
prompt_tensors = prompt_tensors.cpu()
sample_outputs = sample_outputs.cpu()
values = values.cpu()[:, :-1]

# Get the logprobs and values, for tokens that are not padding,
# from the end of the prompt up to the <eos> token, while also including the latter
# (these are taken from the student model and not the reference model)
ends = start + attention_mask[:, start:].sum(1) + 1
all_values = [values[ix, start : ends[ix]] for ix in range(n_samples)]
all_logprobs = [logprobs[ix, start : ends[ix]] for ix in range(n_samples)]

kl_penalty = self.kl_ctl.value * -log_ratio.cpu()
kl_penalty = [xs[start : ends[ix]] for ix, xs in enumerate(kl_penalty)]

rollout_count = 0

for sample_idx in range(n_samples):
    rewards = kl_penalty[sample_idx]
    # Then add in rewards
    if scores.shape[1] == 1:
        # NOTE: Final reward given at EOS token following HHH practice
        rewards[-1] += scores[sample_idx][0].cpu()
    else:
        score = scores[sample_idx]
        score_right_padding = torch.sum(scores_mask[sample_idx])
        score = score[:score_right_padding].cpu()
        p_score = torch.zeros_like(rewards)
        p_score[: score.shape[0]] += score
        rewards += p_score

    ppo_rl_elements.append(
        PPORLElement(
            query_tensor=prompt_tensors[sample_idx],
            response_tensor=sample_outputs[sample_idx],
            logprobs=all_logprobs[sample_idx],
            values=all_values[sample_idx],
            rewards=rewards,
        )
    )

    rollout_count += 1
''',
)
SOURCES['main/me.chunk_stats'] = dict(
    repo='CarperAI/trlx', commit='3340c2f3a56d1d14fdd5f13ad575121fa26b6d92',
    path='trlx/trainer/accelerate_ppo_trainer.py', lines='506-512',
    text=r'''if torch.distributed.is_initialized():
    torch.distributed.all_reduce(mean_kl, torch.distributed.ReduceOp.AVG)

stats["time/rollout_time"] = clock.tick()
stats["policy/sqrt_kl"] = torch.sqrt(mean_kl).item()
stats["policy/kl_per_token"] = torch.sqrt(mean_kl_per_token).item()
accumulated_stats.append(stats)
''',
)
SOURCES['main/me.final_stats'] = dict(
    repo='CarperAI/trlx', commit='3340c2f3a56d1d14fdd5f13ad575121fa26b6d92',
    path='trlx/trainer/accelerate_ppo_trainer.py', lines='518-520',
    text=r'''stats = {k: sum([xs[k] for xs in accumulated_stats]) / len(accumulated_stats) for k in stats}
stats["kl_ctl_value"] = self.kl_ctl.value
self.mean_kl = stats["policy/sqrt_kl"] ** 2
''',
)
SOURCES['main/trainer.create_train_dataloader'] = dict(
    repo='CarperAI/trlx', commit='3340c2f3a56d1d14fdd5f13ad575121fa26b6d92',
    path='trlx/trainer/accelerate_ppo_trainer.py', lines='230-231',
    text=r'''def create_train_dataloader(self):
    return self.store.create_loader(self.config.train.batch_size, shuffle=True)
''',
)
SOURCES['main/me.scores_to_tensor'] = dict(
    repo='CarperAI/trlx', commit='3340c2f3a56d1d14fdd5f13ad575121fa26b6d92',
    path='trlx/trainer/accelerate_ppo_trainer.py', lines='318-330',
    text=r'''all_scores = [
    torch.tensor(score, dtype=torch.float, device=device).view(
        -1,
    )
    for score in all_scores
]
# Pad 0 reward on the ends
all_scores = pad_sequence(all_scores, batch_first=True, padding_value=-np.inf)
max_len = torch.tensor(all_scores.shape[1], dtype=torch.long, device=device)

stats["time/rollout_score"] = time() - rollout_score_time

all_scores = list(all_scores.reshape(self.accelerator.num_processes, -1, max_len).unbind())
''',
)
SOURCES['main/me.scores_scatter'] = dict(
    repo='CarperAI/trlx', commit='3340c2f3a56d1d14fdd5f13ad575121fa26b6d92',
    path='trlx/trainer/accelerate_ppo_trainer.py', lines='335-341',
    text=r'''if torch.distributed.is_initialized():
    torch.distributed.broadcast(max_len, 0)
    scores = torch.empty((len(samples), max_len), device=device)
    torch.distributed.scatter(scores, all_scores)
else:
    scores = all_scores[0].clone().detach()
scores_mask = scores != -np.inf
''',
)
SOURCES['irl/rm.RewardModel'] = dict(
    repo='ai4ai-lab/irl_for_llms', commit='1597c93083f7e33285ab957efb41beed9d6ba5bd',
    path='src/train_rlhf_irl_rm.py', lines='208-218',
    text=r'''class RewardModel(nn.Module):
    def __init__(self, checkpoint_path, eos_token_id):
        super().__init__()
        model = GPTNeoXForCausalLM.from_pretrained(checkpoint_path)
        self.model = model
        self.v_head = nn.Linear(model.gpt_neox.embed_in.embedding_dim, 2, bias=False)
        self.eos_token_id = eos_token_id
    def forward(self, input_ids):
        returns = self.model(input_ids, output_hidden_states=True).hidden_states[-1][:, -1, :]
        returns_2 = self.v_head(returns)
        return returns_2
''',
)
SOURCES['irl/rm.normalize_scores'] = dict(
    repo='ai4ai-lab/irl_for_llms', commit='1597c93083f7e33285ab957efb41beed9d6ba5bd',
    path='src/train_rlhf_irl_rm.py', lines='232-246',
    text=r'''def normalize_scores(values, new_min=-1, new_max=1):
    old_min = min(values)
    old_max = max(values)

    # Handle edge case where all values are the same
    if old_min == old_max:
        return [new_min] * len(values)

    # Normalize to [0, 1]
    normalized = [(v - old_min) / (old_max - old_min) for v in values]

    # Scale to [new_min, new_max]
    scaled = [new_min + (v * (new_max - new_min)) for v in normalized]

    return scaled
''',
)
SOURCES['irl/rm.get_toxicity_score'] = dict(
    repo='ai4ai-lab/irl_for_llms', commit='1597c93083f7e33285ab957efb41beed9d6ba5bd',
    path='src/train_rlhf_irl_rm.py', lines='249-262',
    text=r'''def get_toxicity_score(reward_model, tokenizer, input_texts):
    "Extract value associated with a toxicity score"
    tox_scores = []
    for input_text in input_texts:
        input_ids = tokenizer.encode(input_text, return_tensors='pt', max_length=512, truncation=True).to(device)
        reward_model = reward_model.to(device)

        output = reward_model(input_ids)
        output = -1*output[:, -1].detach().cpu().item()
        tox_scores.append(output)

    tox_scores = normalize_scores(tox_scores)
    tox_scores = [x*1.5 if x < 0 else x*-0.5 for x in tox_scores]
    return tox_scores
''',
)
SOURCES['irl/rm.reward_fn'] = dict(
    repo='ai4ai-lab/irl_for_llms', commit='1597c93083f7e33285ab957efb41beed9d6ba5bd',
    path='src/train_rlhf_irl_rm.py', lines='281-291',
    text=r'''def reward_fn(samples, prompts, original_output, **kwargs) -> List[float]:
    irl_rm_tokenizer.truncation_side = "left"

    samples = [s + irl_rm_tokenizer.eos_token for s in samples]
    rewards = get_toxicity_score(irl_reward_model, irl_rm_tokenizer, samples)

    original_samples = [p + o + irl_rm_tokenizer.eos_token for p, o in zip(prompts, original_output)]
    original_rewards = get_toxicity_score(irl_reward_model, irl_rm_tokenizer, original_samples)

    final_rewards = [i-j for i, j in zip(rewards, original_rewards)] 
    return final_rewards
''',
)
SOURCES['irl/rlhf.get_toxicity_score'] = dict(
    repo='ai4ai-lab/irl_for_llms', commit='1597c93083f7e33285ab957efb41beed9d6ba5bd',
    path='src/train_rlhf.py', lines='205-214',
    text=r'''def get_toxicity_score(scores):
    "Extract value associated with a toxicity score"
    tox_scores = []
    for x in scores:
        if x['label'] == 'toxic':
            tox_scores.append(-x['score'])
        else:
            tox_scores.append(-(1-x['score']))

    return tox_scores
''',
)
SOURCES['irl/rlhf.reward_fn'] = dict(
    repo='ai4ai-lab/irl_for_llms', commit='1597c93083f7e33285ab957efb41beed9d6ba5bd',
    path='src/train_rlhf.py', lines='233-245',
    text=r'''def reward_fn(samples, prompts, original_output, **kwargs) -> List[float]:
    reward_tokenizer = RobertaTokenizer.from_pretrained(model_path)

    reward_tokenizer.truncation_side = "left"

    samples = [s + reward_tokenizer.eos_token for s in samples]
    rewards = get_toxicity_score(rob_tox_fn(samples))

    original_samples = [p + o + reward_tokenizer.eos_token for p, o in zip(prompts, original_output)]
    original_rewards = get_toxicity_score(rob_tox_fn(original_samples))

    final_rewards = [i-j for i, j in zip(rewards, original_rewards)] 
    return final_rewards
''',
)
SOURCES['irl/util.get_reward_score'] = dict(
    repo='ai4ai-lab/irl_for_llms', commit='1597c93083f7e33285ab957efb41beed9d6ba5bd',
    path='src/irl_utilities.py', lines='180-193',
    text=r'''def get_reward_score(reward_model, input_text, tokenizer, true_reward=False):
    """
    Takes reward model and input and returns reward score. 
    """
    input_ids = tokenizer.encode(input_text, return_tensors='pt', max_length=512, truncation=True).to(device)
    reward_model = reward_model.to(device)

    if true_reward:
        output = reward_model(input_ids).logits
    else:
        output = reward_model(input_ids)

    output = -1*output[:, -1]
    return output
''',
)
SOURCES['irl/util.calculate_accuracy_f1'] = dict(
    repo='ai4ai-lab/irl_for_llms', commit='1597c93083f7e33285ab957efb41beed9d6ba5bd',
    path='src/irl_utilities.py', lines='123-126',
    text=r'''def calculate_accuracy_f1(true_rewards, learned_rewards):
    true_rewards_labels = [0 if reward > 0 else 1 for reward in true_rewards]
    learned_rewards_labels = [0 if reward > 0 else 1 for reward in learned_rewards]
    return accuracy_score(true_rewards_labels, learned_rewards_labels), f1_score(true_rewards_labels, learned_rewards_labels)
''',
)
SOURCES['irl/ds.get_generation'] = dict(
    repo='ai4ai-lab/irl_for_llms', commit='1597c93083f7e33285ab957efb41beed9d6ba5bd',
    path='src/create_dataset_irl.py', lines='11-18',
    text='def get_generation(input_text, model, tokenizer):\n    print(f"SAMPLE::\\n {input_text}")\n    input_ids = tokenizer.encode(input_text, return_tensors=\'pt\').to(device)\n    model = model.to(device)\n    output = model.generate(input_ids, max_length=100, temperature=0)\n    output_text = tokenizer.decode(output[0], skip_special_tokens=True)\n    print(f"SAMPLE::\\n {input_text} \\n Output : {output_text}")\n    return output_text\n',
)
SOURCES['irl/ds.generate_irl_demonstrations'] = dict(
    repo='ai4ai-lab/irl_for_llms', commit='1597c93083f7e33285ab957efb41beed9d6ba5bd',
    path='src/create_dataset_irl.py', lines='54-79',
    text=r'''def generate_irl_demonstrations(dataset_name, num_samples_train, model_checkpoints, model_size, debug=True):
    dataset_prompts = datasets.load_dataset(dataset_name)
    num_samples_train = num_samples_train
    num_samples = 2 * num_samples_train
    if debug:
        num_samples_train = 100
        num_samples = 150
    data_name = dataset_name.replace("/", "-")
    dataset_destinations = [f"skrishna/{data_name}_{model_size}_non_toxic", f"skrishna/{data_name}_{model_size}_toxic"]
    for ind, model_chkp in enumerate(model_checkpoints):
        if model_chkp != "random":
            model = GPTNeoXForCausalLM.from_pretrained(model_chkp)
            tokenizer = AutoTokenizer.from_pretrained(model_chkp)
            train_samples = []
            for sample_id in tqdm(range(num_samples_train)):
                input_sample = dataset_prompts["train"][sample_id]["prompt"]
                output_sample = get_generation(input_sample, model, tokenizer)
                train_samples.append({"prompt" : input_sample, "output": output_sample})
            test_samples = []
            for sample_id in tqdm(range(num_samples_train, num_samples)):
                input_sample = dataset_prompts["train"][sample_id]["prompt"]
                output_sample = get_generation(input_sample, model, tokenizer)
                test_samples.append({"prompt" : input_sample, "output": output_sample})
            upload_dataset_to_hf_hub(train_samples, test_samples, dataset_destinations[ind])
    return dataset_destinations        
    pass
''',
)
SOURCES['irl/ds.main'] = dict(
    repo='ai4ai-lab/irl_for_llms', commit='1597c93083f7e33285ab957efb41beed9d6ba5bd',
    path='src/create_dataset_irl.py', lines='81-84',
    text=r'''if __name__ == "__main__":
    dataset_toxicity = datasets.load_dataset("jaredjoss/jigsaw-long-2000")
    model_size = "410M"
    generate_irl_demonstrations("jaredjoss/jigsaw-long-2000", 500, ["jaredjoss/pythia-410m-roberta-lr_8e7-kl_01-steps_12000-rlhf-model", "EleutherAI/pythia-410m", "random"], model_size, debug=False)
''',
)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def jsonable(x):
    """Tensors to (float64) lists, numpy to Python, non-finite floats to strings."""
    if isinstance(x, torch.Tensor):
        if x.is_floating_point():
            return jsonable(x.detach().double().tolist())
        return x.detach().tolist()
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.floating,)):
        return jsonable(float(x))
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.bool_,)):
        return bool(x)
    if isinstance(x, float):
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return x
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if is_dataclass(x):
        return {f.name: jsonable(getattr(x, f.name)) for f in dataclasses.fields(x)}
    return x


def _enc(x, ind=0):
    """JSON with lists of scalars kept on one line."""
    pad, pad1 = " " * ind, " " * (ind + 1)
    if isinstance(x, dict):
        if not x:
            return "{}"
        return "{\n" + ",\n".join(pad1 + json.dumps(k) + ": " + _enc(v, ind + 1) for k, v in x.items()) + "\n" + pad + "}"
    if isinstance(x, list):
        if all(not isinstance(v, (dict, list)) for v in x):
            return json.dumps(x, allow_nan=False)
        return "[\n" + ",\n".join(pad1 + _enc(v, ind + 1) for v in x) + "\n" + pad + "]"
    return json.dumps(x, allow_nan=False)


def write(outdir, name, obj):
    path = os.path.join(outdir, name)
    with open(path, "w") as f:
        f.write(_enc(jsonable(obj)) + "\n")
    print("wrote", path)


def snap(x):
    """A copy of a value now: RunningMoments updates its mean tensor in place (self.mean += ...)."""
    return x.detach().clone() if isinstance(x, torch.Tensor) else x


def t64(x):
    return torch.tensor(x, dtype=torch.float64)


class _TensorTypeStub:
    """torchtyping.TensorType stand-in: TensorType[...] is only an annotation."""

    def __class_getitem__(cls, item):
        return torch.Tensor


class _Torch64(types.ModuleType):
    """`torch` with torch.float meaning float64 (see the module docstring)."""

    def __init__(self):
        super().__init__("torch")

    def __getattr__(self, name):
        if name == "float":
            return torch.float64
        return getattr(torch, name)


TORCH64 = _Torch64()


def src(key):
    return SOURCES[key]["text"]


def exec_sources(keys, ns):
    for k in keys:
        exec(compile(src(k), f"<{k} {SOURCES[k]['repo']}@{SOURCES[k]['commit'][:7]}:{SOURCES[k]['path']}:{SOURCES[k]['lines']}>", "exec"), ns)
    return ns


def sources_of(keys):
    return {k: {kk: SOURCES[k][kk] for kk in ("repo", "commit", "path", "lines")} for k in keys}


VERSIONS = ("fork", "main")
VERSION_INFO = {
    "fork": {"repo": "EleutherAI/trlx", "commit": "126c8f0eb324eab8488f2cdddf5249dbbc28a8f5"},
    "main": {"repo": "CarperAI/trlx", "commit": "3340c2f3a56d1d14fdd5f13ad575121fa26b6d92"},
}
IRL_INFO = {"repo": "ai4ai-lab/irl_for_llms", "commit": "1597c93083f7e33285ab957efb41beed9d6ba5bd"}


def trlx_namespace(ver):
    """The version's functions and classes, exec'd from SOURCES."""
    ns = {
        "torch": torch,
        "np": np,
        "F": F,
        "dist": dist,
        "nn": torch.nn,
        "Tuple": Tuple,
        "Union": Union,
        "Optional": Optional,
        "Dict": Dict,
        "List": List,
        "Iterable": Iterable,
        "Any": Any,
        "PPORLBatch_annotation": None,
        "MutableMapping": MutableMapping,
        "TensorType": _TensorTypeStub,
        "dataclass": dataclass,
        "is_dataclass": is_dataclass,
        "pad_sequence": pad_sequence,
        "DataLoader": DataLoader,
        "partial": __import__("functools").partial,
        "logger": SimpleNamespace(warning=lambda *a, **k: None, info=lambda *a, **k: None),
        "BatchEncoding": type("BatchEncoding", (dict,), {}),
    }
    exec_sources(
        [
            f"{ver}/utils.whiten",
            f"{ver}/utils.logprobs_of_labels",
            f"{ver}/utils.flatten_dict",
            f"{ver}/utils.get_tensor_stats",
            f"{ver}/utils.RunningMoments",
            f"{ver}/ppo.AdaptiveKLController",
            f"{ver}/ppo.FixedKLController",
            f"{ver}/types.PPORLElement",
            f"{ver}/types.PPORLBatch",
            f"{ver}/pipeline.ppo_collate_fn",
            f"{ver}/pipeline.MiniBatchIterator",
        ],
        ns,
    )
    # PPOConfig's two methods, bound to an object carrying the config fields.
    meth = exec_sources([f"{ver}/ppo.PPOConfig.get_advantages_and_returns", f"{ver}/ppo.PPOConfig.loss"], dict(ns))
    ns["PPOConfig"] = type(
        "PPOConfig",
        (SimpleNamespace,),
        {"get_advantages_and_returns": meth["get_advantages_and_returns"], "loss": meth["loss"]},
    )
    return ns


def make_ppo_config(ns, **kw):
    base = dict(gamma=1.0, lam=0.95, cliprange=0.2, cliprange_value=0.2, vf_coef=1.0)
    base.update(kw)
    return ns["PPOConfig"](**base)


# ---------------------------------------------------------------------------
# 1. Stand-alone functions
# ---------------------------------------------------------------------------

# A padded minibatch of three samples with response lengths 6, 4 and 2, laid
# out as ppo_collate_fn leaves it: values/rewards right-padded with 0.0.
GAE_VALUES = [
    [0.50, -0.20, 0.30, 1.10, -0.70, 0.25],
    [1.50, 0.80, -0.40, 0.90, 0.0, 0.0],
    [-0.30, 0.60, 0.0, 0.0, 0.0, 0.0],
]
GAE_REWARDS = [
    [-0.010, 0.020, -0.030, 0.005, -0.015, 2.40],
    [0.030, -0.020, 0.010, -1.75, 0.0, 0.0],
    [0.000, 0.95, 0.0, 0.0, 0.0, 0.0],
]
GAE_LENGTHS = [6, 4, 2]


def gen_gae(nss):
    cases = []
    for gamma, lam in ((1.0, 0.95), (0.99, 0.9)):
        for whiten_ in (True, False):
            case = {
                "gamma": gamma,
                "lam": lam,
                "use_whitening": whiten_,
                "values": GAE_VALUES,
                "rewards": GAE_REWARDS,
                "response_length": 6,
                "real_lengths": GAE_LENGTHS,
                "out": {},
            }
            for ver in VERSIONS:
                cfg = make_ppo_config(nss[ver], gamma=gamma, lam=lam)
                adv, ret = cfg.get_advantages_and_returns(t64(GAE_VALUES), t64(GAE_REWARDS), 6, use_whitening=whiten_)
                case["out"][ver] = {"advantages": adv, "returns": ret}
            cases.append(case)
    return {
        "about": "PPOConfig.get_advantages_and_returns(values, rewards, response_length, use_whitening) on a padded "
        "[3,6] minibatch (real lengths 6,4,2; pads are 0.0 as ppo_collate_fn pads them). The function ignores "
        "masks: GAE runs through the pads, and whitening (whiten, unbiased variance, over ALL 18 entries, pads "
        "included) is of the whole padded tensor. returns = unwhitened advantages + values.",
        "sources": {v: sources_of([f"{v}/ppo.PPOConfig.get_advantages_and_returns", f"{v}/utils.whiten"]) for v in VERSIONS},
        "cases": cases,
    }


LOSS_CASES = [
    {
        "name": "paper-like (cliprange 0.2, cliprange_value 0.2, vf_coef 1)",
        "cfg": dict(cliprange=0.2, cliprange_value=0.2, vf_coef=1.0),
        "logprobs": [[-1.20, -0.80, -2.10, -0.40, -1.00], [-0.30, -1.70, -0.90, -3.00, -2.00], [-2.20, -0.05, -1.10, -0.60, -0.70]],
        "old_logprobs": [[-1.00, -1.10, -2.00, -0.90, -1.00], [-0.32, -1.20, -1.30, -2.60, -0.50], [-2.00, -0.40, -1.10, -0.61, -0.10]],
        "values": [[0.40, -0.30, 1.25, 0.10, 0.00], [2.10, -0.80, 0.55, 0.95, 3.00], [-1.10, 0.05, 0.70, 0.20, 0.40]],
        "old_values": [[0.35, 0.10, 1.00, 0.12, 0.00], [1.70, -0.75, 0.80, 0.90, 0.00], [-1.00, 0.30, 0.70, -0.30, 0.00]],
        "advantages": [[1.30, -0.70, 0.20, -1.50, 0.00], [0.90, 1.10, -0.40, -2.00, 0.50], [-0.25, 1.60, -1.20, 0.75, 0.30]],
        "returns": [[0.90, 0.30, 0.20, -0.40, 0.00], [2.30, -1.20, 0.10, 1.40, 1.00], [-0.20, 0.60, 0.95, -0.50, 0.80]],
        "mask": [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1], [1, 1, 1, 0, 0]],
    },
    {
        "name": "wider clips (cliprange 0.1, cliprange_value 0.5, vf_coef 0.5)",
        "cfg": dict(cliprange=0.1, cliprange_value=0.5, vf_coef=0.5),
        "logprobs": [[-0.50, -1.90, -0.70, -1.30], [-2.50, -0.20, -0.90, -0.30]],
        "old_logprobs": [[-0.45, -1.60, -0.95, -1.30], [-2.10, -0.25, -0.90, -0.90]],
        "values": [[1.00, -2.00, 0.30, 0.60], [0.00, 0.90, -0.40, 1.70]],
        "old_values": [[0.20, -1.00, 0.35, 0.60], [0.40, 0.10, -0.45, 1.00]],
        "advantages": [[-1.00, 2.00, 0.50, 0.00], [1.40, -0.60, -0.90, 0.80]],
        "returns": [[0.50, -0.20, 0.10, 0.60], [1.00, 0.00, -1.40, 0.90]],
        "mask": [[1, 1, 1, 0], [1, 1, 1, 1]],
    },
]


def gen_loss(nss):
    cases = []
    for c in LOSS_CASES:
        case = {k: v for k, v in c.items()}
        case["out"] = {}
        for ver in VERSIONS:
            cfg = make_ppo_config(nss[ver], **c["cfg"])
            lp = t64(c["logprobs"]).requires_grad_(True)
            v = t64(c["values"]).requires_grad_(True)
            loss, stats = cfg.loss(
                logprobs=lp,
                values=v,
                old_logprobs=t64(c["old_logprobs"]),
                old_values=t64(c["old_values"]),
                advantages=t64(c["advantages"]),
                returns=t64(c["returns"]),
                mask=t64(c["mask"]),
            )
            loss.backward()
            case["out"][ver] = {
                "loss": loss,
                "stats": {k: (float(s) if isinstance(s, (torch.Tensor, float, int, np.floating)) else s) for k, s in stats.items()},
                "grad_logprobs": lp.grad,
                "grad_values": v.grad,
            }
        cases.append(case)
    return {
        "about": "PPOConfig.loss(logprobs, values, old_logprobs, old_values, advantages, returns, mask) with the mask as "
        "a float64 tensor. grad_* are d(loss)/d(logprobs) and d(loss)/d(values) by autograd (torch.max splits the "
        "gradient in half on exact ties, e.g. when the ratio is inside the clip range and both branches are "
        "equal; the sum is the same). Note stats policy/approx_kl = torch.mean over ALL entries, pads included "
        "(masked log_ratio gives 0 there, but the denominator is numel, not n).",
        "sources": {v: sources_of([f"{v}/ppo.PPOConfig.loss", f"{v}/utils.get_tensor_stats", f"{v}/utils.flatten_dict"]) for v in VERSIONS},
        "cases": cases,
    }


WHITEN_CASES = [
    {"xs": [[1.0, 2.0, 3.0, 4.0], [-1.0, 0.5, 0.0, 0.0]], "shift_mean": True},
    {"xs": [[1.0, 2.0, 3.0, 4.0], [-1.0, 0.5, 0.0, 0.0]], "shift_mean": False},
    {"xs": [[0.3, 0.3, 0.3]], "shift_mean": True},
    {"xs": [[2.5]], "shift_mean": True},
]


def gen_whiten(nss):
    cases = []
    for c in WHITEN_CASES:
        case = dict(c)
        case["out"] = {ver: nss[ver]["whiten"](t64(c["xs"]), shift_mean=c["shift_mean"]) for ver in VERSIONS}
        cases.append(case)
    return {
        "about": "whiten(xs, shift_mean): (xs - mean) * rsqrt(var + 1e-8) over ALL elements, var unbiased "
        "(torch.var_mean default); shift_mean=False adds the mean back. A single element has var NaN (n-1 = 0), "
        "so the output is NaN.",
        "sources": {v: sources_of([f"{v}/utils.whiten"]) for v in VERSIONS},
        "cases": cases,
    }


RM_BATCHES = [[3.7, -10.0, 0.45], [10.0, -0.3], [2.0], [-4.0, 6.0, 1.5, 0.25]]


def gen_running_moments(nss):
    out = {"batches": RM_BATCHES, "out": {}}
    for ver in VERSIONS:
        rm = nss[ver]["RunningMoments"]()
        steps = [{"mean": snap(rm.mean), "var": snap(rm.var), "std": snap(rm.std), "count": snap(rm.count), "note": "initial"}]
        for b in RM_BATCHES:
            bm, bs = rm.update(t64(b))
            steps.append({"batch_mean": snap(bm), "batch_std": snap(bs), "mean": snap(rm.mean), "var": snap(rm.var), "std": snap(rm.std), "count": snap(rm.count)})
        out["out"][ver] = steps
    out["about"] = (
        "RunningMoments.update(xs) applied to the batches in turn (initial mean 0, var 1, std 1, count 1e-24). "
        "Each step gives the returned (batch_mean, batch_std = unbiased std of the batch; NaN for a one-element "
        "batch) and the state after it (std = sqrt(var * count / (count - 1)))."
    )
    out["sources"] = {v: sources_of([f"{v}/utils.RunningMoments"]) for v in VERSIONS}
    return out


KL_UPDATES = [(0.5, 8), (4.9, 8), (6.0, 8), (20.0, 2), (0.0, 48), (5.5, 16)]


def gen_kl_controller(nss):
    out = {"init_kl_coef": 0.2, "target": 4.9, "horizon": 10000, "updates": KL_UPDATES, "out": {}}
    for ver in VERSIONS:
        a = nss[ver]["AdaptiveKLController"](0.2, 4.9, 10000)
        f = nss[ver]["FixedKLController"](0.2)
        av, fv = [], []
        for cur, n in KL_UPDATES:
            a.update(cur, n_steps=n)
            f.update(cur, n_steps=n)
            av.append(float(a.value))
            fv.append(float(f.value))
        out["out"][ver] = {"adaptive_values": av, "fixed_values": fv}
    out["about"] = (
        "AdaptiveKLController(init_kl_coef, target, horizon).update(current, n_steps) in turn: "
        "value *= 1 + clip(current/target - 1, -0.2, 0.2) * n_steps / horizon; FixedKLController never changes. "
        "Values after each update."
    )
    out["sources"] = {v: sources_of([f"{v}/ppo.AdaptiveKLController", f"{v}/ppo.FixedKLController"]) for v in VERSIONS}
    return out


# ---------------------------------------------------------------------------
# 2. make_experience: reward assembly and the KL for the controller
# ---------------------------------------------------------------------------

V = 8  # vocabulary of the toy model
PAD, EOS = 1, 0  # Pythia's <|padding|> = 1 (TRLx sets pad_token to it), <|endoftext|> = 0

# Two chunks (two passes of make_experience's while-loop). Prompts are
# left-padded, responses right-padded, as TRLx lays them out. Response lengths
# count the EOS that decode(append_eos_token=True) + re-tokenising puts back.
CHUNKS = [
    {
        "prompt_tensors": [[PAD, PAD, 5, 6], [7, 2, 3, 4], [PAD, 6, 5, 4]],
        # s0: 2 tokens + EOS; s1: 1 token + EOS; s2: cut at max_new_tokens (no EOS), fills the width
        "sample_outputs": [[3, 4, EOS, PAD, PAD], [2, EOS, PAD, PAD, PAD], [5, 6, 7, 2, 3]],
        "raw_scores": [3.7, -12.0, 0.45],
        "dense_scores": [[0.5, -0.25, 1.0], [2.0], [0.1, 0.2, 0.3, -11.0, 0.5]],
    },
    {
        "prompt_tensors": [[2, 5, 7], [PAD, PAD, 3]],
        # s3: 1 token + EOS; s4: 3 tokens + EOS exactly filling the width
        "sample_outputs": [[6, EOS, PAD, PAD], [4, 5, 2, EOS]],
        "raw_scores": [15.0, -0.3],
        "dense_scores": [[1.5, -0.5], [0.25, 0.25, 0.25, 0.25]],
    },
]

_g = torch.Generator().manual_seed(20240921)
TOY = {
    "tok": torch.randn(V, V, generator=_g, dtype=torch.float64),
    "pos": torch.randn(16, V, generator=_g, dtype=torch.float64),
    "prev": torch.randn(V, V, generator=_g, dtype=torch.float64) * 0.5,
    "vtok": torch.randn(V, generator=_g, dtype=torch.float64),
    "vpos": torch.randn(16, generator=_g, dtype=torch.float64) * 0.5,
    "ref_tok": torch.randn(V, V, generator=_g, dtype=torch.float64) * 0.3,
    "new_tok": torch.randn(V, V, generator=_g, dtype=torch.float64) * 0.15,
    "new_vtok": torch.randn(V, generator=_g, dtype=torch.float64) * 0.3,
}


def toy_model(tokens, position_ids, kind="policy"):
    """A toy causal LM + value head: logits[b,t] = TOK[x_t] + POS[p_t] + PREV[x_{t-1}] (PREV only when the previous
    token is not a pad), value[b,t] = VTOK[x_t] + VPOS[p_t]. It depends on tokens and position_ids only, so left
    padding does not change it. kind: policy (rollout time), ref (reference), new (the policy after some updates)."""
    tok = TOY["tok"]
    vtok = TOY["vtok"]
    if kind == "ref":
        tok = tok + TOY["ref_tok"]
    if kind == "new":
        tok = tok + TOY["new_tok"]
        vtok = vtok + TOY["new_vtok"]
    B, L = tokens.shape
    logits = tok[tokens] + TOY["pos"][position_ids]
    prev = torch.zeros_like(logits)
    prev[:, 1:] = TOY["prev"][tokens[:, :-1]] * (tokens[:, :-1] != PAD).unsqueeze(-1)
    logits = logits + prev
    values = vtok[tokens] + TOY["vpos"][position_ids]
    return logits, values


class _Clock:
    def tick(self):
        return 0.0


def run_make_experience(ver, ns, method_cfg, beta, dense=False):
    """Runs the verbatim excerpts of make_experience over CHUNKS with a stub trainer `self`."""
    if dense and ver != "main":
        raise ValueError("dense scores exist only in main")
    self = SimpleNamespace(
        config=SimpleNamespace(method=SimpleNamespace(**method_cfg), model=SimpleNamespace(model_arch_type="causal")),
        ref_mean=method_cfg.get("ref_mean"),
        ref_std=method_cfg.get("ref_std"),
        running_moments=ns["RunningMoments"](),
        kl_ctl=ns["FixedKLController"](beta),
        accelerator=SimpleNamespace(num_processes=1, is_main_process=True),
        model=SimpleNamespace(peft_type=None),
        tokenizer=SimpleNamespace(pad_token_id=PAD, eos_token_id=EOS),
    )
    accumulated_stats, ppo_rl_elements, chunks_out = [], [], []
    env = None
    for chunk in CHUNKS:
        prompt_tensors = torch.tensor(chunk["prompt_tensors"])
        sample_outputs = torch.tensor(chunk["sample_outputs"])
        env = dict(ns)
        env.update(
            torch=TORCH64,
            self=self,
            stats={},
            device="cpu",
            prompt_tensors=prompt_tensors,
            sample_outputs=sample_outputs,
            samples=torch.cat((prompt_tensors, sample_outputs), dim=1),  # generate()'s output: only .shape[0] is read
            accumulated_stats=accumulated_stats,
            ppo_rl_elements=ppo_rl_elements,
            clock=_Clock(),
            PPORLElement=ns["PPORLElement"],
            time=lambda: 0.0,
            rollout_score_time=0.0,
        )
        rec = {"prompt_tensors": prompt_tensors, "sample_outputs": sample_outputs}
        if ver == "fork":
            # replaces `all_scores = torch.tensor(self.reward_fn(...), dtype=torch.float, ...)` ... `scores = all_scores[0].clone().detach()`
            env["scores"] = t64(chunk["raw_scores"])
            rec["reward_fn_output"] = chunk["raw_scores"]
        else:
            # the reward_fn's return value, then main's verbatim conversion and padding (-inf) + scores_mask
            env["all_scores"] = chunk["dense_scores"] if dense else chunk["raw_scores"]
            rec["reward_fn_output"] = env["all_scores"]
            exec_sources(["main/me.scores_to_tensor", "main/me.scores_scatter"], env)
            rec["scores_mask"] = env["scores_mask"]
        rec["scores_before_clip"] = env["scores"].clone()
        exec_sources([f"{ver}/me.clip"], env)
        rec["scores_clipped"] = env["scores"].clone()
        exec_sources([f"{ver}/me.moments_and_scale"], env)
        rec["scores_scaled"] = env["scores"].clone()
        rec["ref_mean"], rec["ref_std"] = snap(self.ref_mean), snap(self.ref_std)
        rec["running_moments_after"] = {
            "mean": snap(self.running_moments.mean),
            "var": snap(self.running_moments.var),
            "std": snap(self.running_moments.std),
            "count": snap(self.running_moments.count),
        }
        exec_sources([f"{ver}/me.tokens"], env)  # all_tokens, attention_mask, position_ids
        env["logits"], env["values"] = toy_model(env["all_tokens"], env["position_ids"], "policy")
        env["ref_logits"], _ = toy_model(env["all_tokens"], env["position_ids"], "ref")
        rec["all_tokens"], rec["attention_mask"], rec["position_ids"] = env["all_tokens"], env["attention_mask"], env["position_ids"]
        rec["values_model_output"] = env["values"]
        n_before = len(ppo_rl_elements)
        exec_sources([f"{ver}/me.kl_and_rewards"], env)
        exec_sources([f"{ver}/me.chunk_stats"], env)
        rec.update(
            logprobs_full=env["logprobs"],
            ref_logprobs_full=env["ref_logprobs"],
            log_ratio=env["log_ratio"],
            kl=env["kl"],
            mean_kl=snap(env["mean_kl"]),
            mean_kl_per_token=snap(env["mean_kl_per_token"]),
            start=env["start"],
            ends=env["ends"],
            stats=dict(env["stats"]),
            kl_coef=snap(self.kl_ctl.value),
            elements=[
                {"logprobs": e.logprobs, "values": e.values, "rewards": e.rewards} for e in ppo_rl_elements[n_before:]
            ],
        )
        # what a response-only reading would give, for comparison: slices [start, start + n_real)
        n_real = (sample_outputs != PAD).sum(1)
        rec["response_only"] = [
            {
                "n_real_tokens": int(n_real[i]),
                "log_ratio": env["log_ratio"][i, env["start"] : env["start"] + int(n_real[i])],
                "kl3_sum": env["kl"][i, env["start"] : env["start"] + int(n_real[i])].sum(),
            }
            for i in range(len(n_real))
        ]
        chunks_out.append(rec)
    exec_sources([f"{ver}/me.final_stats"], env)
    return {
        "chunks": chunks_out,
        "final_stats": env["stats"],
        "mean_kl_for_controller": self.mean_kl,
        "elements": ppo_rl_elements,
        "self": self,
    }


ME_CASES = [
    {"name": "running", "method": dict(cliprange_reward=10, scale_reward="running", ref_mean=None, ref_std=None), "beta": 0.2},
    {"name": "ref", "method": dict(cliprange_reward=10, scale_reward="ref", ref_mean=None, ref_std=None), "beta": 0.05},
    {"name": "none-noclip", "method": dict(cliprange_reward=0, scale_reward=None, ref_mean=None, ref_std=None), "beta": 0.1},
]


def gen_make_experience(nss):
    cases = []
    for c in ME_CASES:
        case = {"name": c["name"], "method": c["method"], "kl_coef": c["beta"], "out": {}}
        for ver in VERSIONS:
            r = run_make_experience(ver, nss[ver], c["method"], c["beta"])
            case["out"][ver] = {k: v for k, v in r.items() if k not in ("elements", "self")}
        cases.append(case)
    r = run_make_experience("main", nss["main"], ME_CASES[0]["method"], ME_CASES[0]["beta"], dense=True)
    dense = {"name": "main-only dense (per-token) scores", "method": ME_CASES[0]["method"], "kl_coef": ME_CASES[0]["beta"],
             "out": {"main": {k: v for k, v in r.items() if k not in ("elements", "self")}}}
    keys = ["me.clip", "me.moments_and_scale", "me.tokens", "me.kl_and_rewards", "me.chunk_stats", "me.final_stats"]
    return {
        "about": (
            "The verbatim middle of AcceleratePPOTrainer.make_experience, run over two chunks (the while-loop's "
            "passes) with a toy model (toy_model in the script) standing in for the policy, reference and value head. "
            "Per chunk: reward_fn_output -> scores_before_clip -> scores_clipped (torch.clip to +-cliprange_reward, "
            "skipped when cliprange_reward is 0) -> ref_mean/ref_std (set from the FIRST chunk's clipped scores when "
            "ref_mean is None; std unbiased) -> running_moments.update(clipped scores) -> scores_scaled (/ running std "
            "after this chunk's update, or / ref_std, or unchanged). Then logprobs over the WHOLE sequence "
            "(logprobs[i] = log p(all_tokens[i+1])), log_ratio = (logprobs - ref_logprobs) * attention_mask[:, :-1] "
            "(the mask of the conditioning token, so prompt tokens count and the prediction after the last response "
            "token counts), kl = exp(log_ratio) - 1 - log_ratio, mean_kl = kl.sum(1).mean(), mean_kl_per_token = "
            "kl.mean() (pads in the denominator). start = prompt width - 1, ends = start + attention_mask[:, start:]"
            ".sum(1) + 1 (the slice runs up to 2 positions past the last real response token, capped by the width). "
            "Each element's rewards = -kl_coef * log_ratio[start:end] with the scaled score added to the LAST entry "
            "of that slice. stats['policy/sqrt_kl'] = sqrt(mean_kl) per chunk; final_stats averages the chunks' "
            "stats; the controller gets mean_kl_for_controller = (mean over chunks of sqrt(mean_kl))**2. "
            "response_only gives the same KL restricted to the real response tokens, for comparison."
        ),
        "toy_model": {k: v for k, v in TOY.items()},
        "pad_token_id": PAD,
        "eos_token_id": EOS,
        "sources": {v: sources_of([f"{v}/{k}" for k in keys] + (["main/me.scores_to_tensor", "main/me.scores_scatter"] if v == "main" else [])) for v in VERSIONS},
        "cases": cases + [dense],
    }


# ---------------------------------------------------------------------------
# 3. Store -> collate -> trainer.loss (the PPO step on one minibatch)
# ---------------------------------------------------------------------------


def run_pipeline(ver, ns, elements):
    captured = {}
    cfg = make_ppo_config(ns)

    def get_adv(values, rewards, response_length, use_whitening=True):
        a, r = type(cfg).get_advantages_and_returns(cfg, values, rewards, response_length, use_whitening)
        captured.update(old_values=values, old_rewards=rewards, response_length=response_length, advantages=a, returns=r)
        return a, r

    def loss_fn(**kw):
        lp = kw["logprobs"].detach().clone().requires_grad_(True)
        vp = kw["values"].detach().clone().requires_grad_(True)
        kw2 = dict(kw, logprobs=lp, values=vp)
        loss, stats = type(cfg).loss(cfg, **kw2)
        loss.backward()
        captured.update(
            new_logprobs=kw["logprobs"], new_values=kw["values"], mask=kw["mask"], old_logprobs=kw["old_logprobs"],
            grad_logprobs=lp.grad, grad_values=vp.grad,
        )
        return type(cfg).loss(cfg, **kw)

    method = SimpleNamespace(get_advantages_and_returns=get_adv, loss=loss_fn)

    def model(tokens, attention_mask, return_dict=True, position_ids=None):
        logits, values = toy_model(tokens, position_ids, "new")
        return SimpleNamespace(logits=logits, value=values)

    self = SimpleNamespace(
        config=SimpleNamespace(method=method, model=SimpleNamespace(model_arch_type="causal")),
        accelerator=SimpleNamespace(device="cpu"),
        tokenizer=SimpleNamespace(pad_token_id=PAD),
        model=model,
    )
    env = dict(ns)
    exec_sources([f"{ver}/trainer.loss"], env)
    batch = ns["ppo_collate_fn"]("left", PAD, elements)
    loss, stats = env["loss"](self, batch)
    return {
        "batch": batch,
        "captured": captured,
        "loss": loss,
        "stats": {k: (float(s) if isinstance(s, (torch.Tensor, float, int, np.floating)) else s) for k, s in stats.items()},
    }


def gen_pipeline(nss):
    out = {"cases": []}
    for case in ME_CASES[:1]:
        c = {"from_make_experience_case": case["name"], "out": {}}
        for ver in VERSIONS:
            me = run_make_experience(ver, nss[ver], case["method"], case["beta"])
            c["out"][ver] = run_pipeline(ver, nss[ver], me["elements"])
        out["cases"].append(c)
    out["about"] = (
        "The five PPORLElements of make_experience.json case 'running' (both chunks) collated as ONE batch by "
        "ppo_collate_fn('left', pad) (queries left-padded to the widest, responses/logprobs/values/rewards "
        "right-padded with pad/0.0), then the verbatim AcceleratePPOTrainer.loss with toy_model(kind='new') as the "
        "updated policy: advantages/returns from get_advantages_and_returns on the padded rollout tensors "
        "(response_length = rewards width), new logprobs/values sliced [start, start + response_length) with "
        "start = query width - 1 and mask = attention_mask[:, start+1 : end+1] (the real response tokens only: the "
        "extra positions that make_experience's slice took, where the score sits, are masked out here). "
        "captured holds what the PPO loss received; grad_* are d(loss)/d(new logprobs, new values)."
    )
    out["sources"] = {v: sources_of([f"{v}/pipeline.ppo_collate_fn", f"{v}/trainer.loss"]) for v in VERSIONS}
    return out


# ---------------------------------------------------------------------------
# 4. The training loop: order of updates, when beta and the LR move
# ---------------------------------------------------------------------------


@dataclass
class _IdBatch:
    ids: torch.Tensor


class _Store(Dataset):
    def __init__(self):
        self.history = []

    def push(self, xs):
        self.history += xs

    def clear_history(self):
        self.history = []

    def export_history(self, location):
        pass

    def __len__(self):
        return len(self.history)

    def __getitem__(self, i):
        return self.history[i]

    def create_loader(self, batch_size, shuffle):
        return DataLoader(self, batch_size, shuffle=shuffle, collate_fn=lambda xs: _IdBatch(torch.tensor(xs)))


def kl_of_phase(p):
    """The mean_kl make_experience reports in rollout phase p (made up, deterministic)."""
    return 5.0 + 4.0 * math.sin(0.37 * p + 0.5)


def run_learn(ver, ns, cfg, record_events=True, lr_every=1):
    """Runs the version's verbatim learn() (and _accumulate, prepare_learning, post_*_callback) with stubs."""
    events = []
    phase_betas = []
    betas = []
    lrs = []
    env = dict(ns)
    env.update(
        contextlib=contextlib,
        contextmanager=contextmanager,
        json=json,
        os=os,
        time=lambda: 0.0,
        torch=torch,
        ray=SimpleNamespace(is_initialized=lambda: False),
        session=None,
        logging=SimpleNamespace(tqdm=lambda **k: SimpleNamespace(set_description=lambda *a: None, update=lambda *a: None, close=lambda: None)),
        filter_non_scalars=lambda x: x,
    )
    keys = [f"{ver}/base.accumulate", f"{ver}/base.learn", f"{ver}/trainer.post_epoch_callback",
            f"{ver}/trainer.post_backward_callback", f"{ver}/trainer.prepare_learning"]
    if ver == "main":
        keys.append("main/trainer.create_train_dataloader")
    exec_sources(keys, env)

    param = torch.nn.Parameter(torch.zeros(1))
    inner_opt = torch.optim.SGD([param], lr=cfg["lr"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(inner_opt, T_max=cfg["T_max"], eta_min=cfg["eta_min"])
    kl = ns["AdaptiveKLController"](cfg["init_kl_coef"], cfg["target"], cfg["horizon"])

    class Opt:
        n = 0

        def step(self_):
            Opt.n += 1
            lr = inner_opt.param_groups[0]["lr"]
            if record_events:
                events.append(["opt.step", lr])
            if Opt.n % lr_every == 0:
                lrs.append([Opt.n, lr])

        def zero_grad(self_):
            pass

    class Sched:
        def step(self_):
            sched.step()
            if record_events:
                events.append(["scheduler.step"])

        def get_last_lr(self_):
            return sched.get_last_lr()

    class KL:
        @property
        def value(self_):
            return kl.value

        def update(self_, current, n_steps):
            kl.update(current, n_steps)
            betas.append([float(current), n_steps, float(kl.value)])
            if record_events:
                events.append(["kl_ctl.update", float(current), n_steps, float(kl.value)])

    class Trainer:
        pass

    for name in ("_accumulate", "learn", "post_epoch_callback", "post_backward_callback", "prepare_learning", "create_train_dataloader"):
        if name in env:
            setattr(Trainer, name, env[name])

    t = Trainer()
    t.config = SimpleNamespace(
        train=SimpleNamespace(epochs=cfg["epochs"], total_steps=cfg["total_steps"], batch_size=cfg["batch_size"],
                              checkpoint_interval=10**9, eval_interval=10**9, save_best=False, save_optimizer=False,
                              checkpoint_dir="unused"),
        method=SimpleNamespace(num_rollouts=cfg["num_rollouts"], ppo_epochs=cfg["ppo_epochs"], chunk_size=cfg["chunk_size"]),
    )
    mb = cfg["minibatch_size"] or cfg["batch_size"]
    t.mb_size, t.num_mb, t.mb_count = mb, cfg["batch_size"] // mb, 0
    t.accelerator = SimpleNamespace(gradient_accumulation_steps=1, no_sync=lambda m: contextlib.nullcontext(),
                                    log=lambda *a, **k: None, is_local_main_process=True,
                                    prepare_data_loader=lambda x: x, device="cpu", backward=lambda loss: events.append(["backward"]) if record_events else None)
    t.model = SimpleNamespace(train=lambda: None, eval=lambda: None)
    t.opt, t.scheduler, t.kl_ctl = Opt(), Sched(), KL()
    t.store = _Store()
    t.log_rollouts = False
    t.eval_pipeline = SimpleNamespace(create_loader=lambda n: None)
    t.phase = 0

    def make_experience(num_rollouts, iter_count=0):
        p = t.phase
        t.store.push([p * 1000 + i for i in range(num_rollouts)])
        t.mean_kl = kl_of_phase(p)
        phase_betas.append([p, float(kl.value)])
        t.phase += 1
        if record_events:
            events.append(["make_experience", p, num_rollouts, t.mean_kl])

    def loss(batch):
        if record_events:
            events.append(["loss", batch.ids.tolist()])
        return torch.tensor(0.0), {"loss/total_loss": 0.0}

    def evaluate():
        if record_events:
            events.append(["evaluate"])
        return {}

    t.make_experience, t.loss, t.evaluate = make_experience, loss, evaluate
    t.save = t.save_pretrained = lambda *a, **k: None
    torch.manual_seed(0)  # main's shuffling (RandomSampler) draws from torch's global generator
    t.learn()
    kl_updates = betas if record_events else [[i] + b for i, b in enumerate(betas) if i < 40 or i % 100 == 0 or i == len(betas) - 1]
    return {"events": events if record_events else None, "kl_updates": kl_updates, "kl_updates_total": len(betas),
            "beta_at_each_make_experience": phase_betas, "lrs": lrs,
            "iter_count": t.iter_count, "total_steps": t.total_steps, "optimizer_steps": Opt.n,
            "scheduler_last_epoch": sched.last_epoch, "rollout_phases": t.phase}


LEARN_CASES = [
    {"name": "A: minibatch_size 2 of batch_size 4", "num_rollouts": 8, "chunk_size": 4, "batch_size": 4, "minibatch_size": 2,
     "ppo_epochs": 3, "epochs": 100, "total_steps": 14, "lr": 1.0, "T_max": 10, "eta_min": 0.1,
     "init_kl_coef": 0.2, "target": 4.9, "horizon": 100},
    {"name": "B: no minibatching (as the paper's configs)", "num_rollouts": 12, "chunk_size": 4, "batch_size": 4, "minibatch_size": None,
     "ppo_epochs": 2, "epochs": 100, "total_steps": 10, "lr": 1.0, "T_max": 10, "eta_min": 0.1,
     "init_kl_coef": 0.2, "target": 4.9, "horizon": 100},
]
PAPER_LEARN_CASES = [
    {"name": "410M RLHF (train_rlhf.py get_config('410M'))", "num_rollouts": 48, "chunk_size": 4, "batch_size": 8, "minibatch_size": None,
     "ppo_epochs": 5, "epochs": 1000, "total_steps": 10000, "lr": 8e-7, "T_max": 10000, "eta_min": 2.2e-7,
     "init_kl_coef": 0.2, "target": 4.9, "horizon": 10000},
    {"name": "410M IRL-RLHF (train_rlhf_irl_rm.py get_config('410M'))", "num_rollouts": 48, "chunk_size": 4, "batch_size": 2, "minibatch_size": None,
     "ppo_epochs": 5, "epochs": 1000, "total_steps": 11500, "lr": 8e-7, "T_max": 10000, "eta_min": 2.2e-7,
     "init_kl_coef": 0.2, "target": 4.9, "horizon": 10000},
]


def gen_learn(nss):
    cases = []
    for c in LEARN_CASES:
        cases.append({"config": c, "out": {ver: run_learn(ver, nss[ver], c) for ver in VERSIONS}})
    paper = []
    for c in PAPER_LEARN_CASES:
        o = {}
        for ver in VERSIONS:
            r = run_learn(ver, nss[ver], c, record_events=False, lr_every=500)
            o[ver] = r
        paper.append({"config": c, "out": o})
    return {
        "about": (
            "The verbatim learn() loop of each version (with _accumulate, prepare_learning, post_backward_callback, "
            "post_epoch_callback and, in main, create_train_dataloader) run with stubs: rollouts are integer ids "
            "(phase*1000 + index), loss() only records the ids of its microbatch, a real CosineAnnealingLR steps a "
            "real SGD's lr, and a real AdaptiveKLController gets self.mean_kl = kl_of_phase(phase) = "
            "5 + 4*sin(0.37*phase + 0.5) from each make_experience. events is the call order: make_experience, "
            "evaluate, loss [ids], backward, opt.step [lr at that step], scheduler.step, kl_ctl.update [kl, n_steps, "
            "beta after]. main's order of ids comes from torch.manual_seed(0) and torch's RandomSampler, which other "
            "code cannot reproduce; only its structure (each pass a permutation) is portable. paper_configs run the "
            "paper's 410M configs without events: kl_updates lists every [kl, n_steps, beta after], lrs the lr used "
            "at every 500th optimizer step; there kl_updates is [index, kl, n_steps, beta after] for the first 40, every 100th "
            "and the last update, and beta_at_each_make_experience is [phase, beta] when each rollout phase starts (the beta "
            "its KL penalty uses)."
        ),
        "cases": cases,
        "paper_configs": paper,
        "sources": {v: sources_of([f"{v}/base.accumulate", f"{v}/base.learn", f"{v}/trainer.post_epoch_callback",
                                   f"{v}/trainer.post_backward_callback", f"{v}/trainer.prepare_learning"]
                                  + (["main/trainer.create_train_dataloader"] if v == "main" else [])) for v in VERSIONS},
    }


# ---------------------------------------------------------------------------
# 5. CosineAnnealingLR
# ---------------------------------------------------------------------------


def lr_table(base_lr, T_max, eta_min, steps):
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=base_lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=T_max, eta_min=eta_min)
    want = set(steps)
    rows = []
    maxdiff, argmax = 0.0, 0
    last = max(steps)
    for s in range(0, last + 1):
        if s > 0:
            opt.step()
            sched.step()
        rec = opt.param_groups[0]["lr"]
        closed = sched._get_closed_form_lr()[0]
        formula = eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * s / T_max)) / 2
        d = abs(rec - closed)
        if d > maxdiff:
            maxdiff, argmax = d, s
        if s in want:
            rows.append({"step": s, "recursive": rec, "closed_form": closed, "formula": formula,
                         "recursive_minus_closed": rec - closed})
    return {"base_lr": base_lr, "T_max": T_max, "eta_min": eta_min, "rows": rows,
            "max_abs_recursive_minus_closed": maxdiff, "at_step": argmax}


def gen_lr():
    steps1 = sorted(set([0, 1, 2, 5000, 9999, 10000, 10001, 11500, 12000] + list(range(0, 12001, 1000))))
    steps2 = sorted(set([0, 1, 2, 100, 300, 599, 600]))
    return {
        "about": (
            "torch.optim.lr_scheduler.CosineAnnealingLR over SGD (lr = base_lr), PyTorch " + torch.__version__ + ". "
            "step s = the lr after s scheduler.step() calls, i.e. the lr used by optimizer step s+1. 'recursive' is what "
            "the scheduler really sets (its chainable get_lr: each value from the previous one, with a special "
            "case when (s - 1 - T_max) % (2*T_max) == 0); 'closed_form' is its _get_closed_form_lr(); 'formula' "
            "is eta_min + (base_lr - eta_min)(1 + cos(pi*s/T_max))/2 in Python floats. Past T_max neither form "
            "stays at eta_min: both follow the cosine back up (period 2*T_max). max_abs_recursive_minus_closed is "
            "over every step from 0 to the last row. The second case is the paper's 70M config (train_rlhf.py / "
            "train_rlhf_irl_rm.py get_config('70M')): eta_min 5.45e-6 ABOVE lr 3e-6, so the lr rises."
        ),
        "cases": [lr_table(8e-7, 10000, 2.2e-7, steps1), lr_table(3e-6, 10000, 5.45e-6, steps2)],
    }


# ---------------------------------------------------------------------------
# 6. irl_for_llms: the IRL-RLHF reward (RF_2), the ground truth
# ---------------------------------------------------------------------------


class _StubText:
    def __init__(self, text):
        self.text = text

    def to(self, device):
        return self


class _StubTokenizer:
    eos_token = "<|endoftext|>"

    def __init__(self):
        self.seen = []
        self.truncation_side = "right"

    def encode(self, text, return_tensors=None, max_length=None, truncation=None):
        self.seen.append(text)
        return _StubText(text)


class _StubRewardModel:
    """RewardModel stand-in: returns the head's two outputs [o0, o1] for a text, from a table."""

    def __init__(self, table):
        self.table = table

    def to(self, device):
        return self

    def __call__(self, input_ids):
        return t64([self.table[input_ids.text]])


def irl_namespace():
    ns = {"torch": torch, "device": torch.device("cpu"), "List": List, "nn": torch.nn, "np": np}
    exec_sources(["irl/rm.normalize_scores", "irl/rm.get_toxicity_score"], ns)
    return ns


RF2_BATCHES = [
    {"name": "mixed", "head_o1": [0.8, -1.3, 2.5, 0.1]},
    {"name": "all equal", "head_o1": [0.7, 0.7, 0.7, 0.7]},
    {"name": "one sample", "head_o1": [-2.0]},
    {"name": "ties and the midpoint (x = 0 gives 0 * -0.5 = -0.0)", "head_o1": [1.0, -1.0, 0.0, 1.0, -1.0]},
    {"name": "two samples", "head_o1": [3.0, -3.0]},
]


def gen_irl():
    out = {}
    ns = irl_namespace()
    # rf2 on batches: the head output o1 (index -1 of the two outputs) per text
    cases = []
    for b in RF2_BATCHES:
        texts = [f"text {i}" for i in range(len(b["head_o1"]))]
        table = {tx: [0.0, o] for tx, o in zip(texts, b["head_o1"])}
        tok = _StubTokenizer()
        got = ns["get_toxicity_score"](_StubRewardModel(table), tok, texts)
        neg = [-1 * o for o in b["head_o1"]]
        cases.append({"name": b["name"], "head_o1": b["head_o1"], "negated": neg,
                      "normalize_scores": ns["normalize_scores"](list(neg)), "rf2": got})
    out["rf2"] = {
        "about": (
            "get_toxicity_score(reward_model, tokenizer, texts) of train_rlhf_irl_rm.py, the reward transform of the "
            "paper's IRL-RLHF runs (their result files say RF_2): per text, o = -1 * head(...)[:, -1] (the second of "
            "the learned head's two outputs, negated), then normalize_scores over THE CALL'S BATCH (min-max to "
            "[-1, 1]; all equal -> every value -1, i.e. new_min), then x*1.5 if x < 0 else x*-0.5. All-equal and "
            "one-sample batches therefore give -1.5 each (not 0)."
        ),
        "source_normalize_scores": src("irl/rm.normalize_scores"),
        "source_get_toxicity_score": src("irl/rm.get_toxicity_score"),
        "cases": cases,
    }

    # the relative reward of the IRL-RLHF reward_fn, run verbatim with stubs
    prompts = ["Prompt A.", "Prompt B:", "Prompt C", "Prompt D"]
    outputs = [" gen a<|endoftext|>", " gen b<|endoftext|>", " gen c cut at max_new_tokens", " gen d<|endoftext|>"]
    samples = [p + o for p, o in zip(prompts, outputs)]
    originals = [" orig a", " orig b", " orig c", " orig d"]
    tok = _StubTokenizer()
    gen_o1 = [0.9, -0.4, 2.2, 0.3]
    orig_o1 = [-1.1, 0.5, 0.5, 1.7]
    table = {}
    for s, o in zip(samples, gen_o1):
        table[s + tok.eos_token] = [0.0, o]
    for p, x, o in zip(prompts, originals, orig_o1):
        table[p + x + tok.eos_token] = [0.0, o]
    env = dict(ns)
    env.update(irl_rm_tokenizer=tok, irl_reward_model=_StubRewardModel(table))
    exec_sources(["irl/rm.reward_fn"], env)
    final = env["reward_fn"](samples, prompts, originals)
    gen_rf2 = ns["get_toxicity_score"](_StubRewardModel(table), _StubTokenizer(), [s + tok.eos_token for s in samples])
    orig_rf2 = ns["get_toxicity_score"](_StubRewardModel(table), _StubTokenizer(), [p + x + tok.eos_token for p, x in zip(prompts, originals)])
    out["relative"] = {
        "about": (
            "reward_fn of train_rlhf_irl_rm.py run verbatim: rf2 of the generated batch minus rf2 of the batch of "
            "originals, each normalised over its OWN batch (the call's chunk: chunk_size 4 in the paper's configs). "
            "samples are TRLx's prompt + output strings (TRLx's decode(append_eos_token=True) has already put "
            "'<|endoftext|>' after outputs that stopped on EOS/pad, not after ones cut by max_new_tokens); the "
            "reward_fn appends the IRL tokenizer's eos_token ('<|endoftext|>' for Pythia) once more, so the head "
            "reads the state at an appended EOS (twice EOS when the policy stopped by itself). texts_seen lists "
            "what the head was given, in order."
        ),
        "prompts": prompts, "samples": samples, "original_output": originals,
        "head_o1_generated": gen_o1, "head_o1_original": orig_o1,
        "rf2_generated": gen_rf2, "rf2_original": orig_rf2, "final_rewards": final,
        "texts_seen": tok.seen,
        "source_reward_fn": src("irl/rm.reward_fn"),
        "source_RewardModel": src("irl/rm.RewardModel"),
    }

    # ground truth of the RLHF runs (train_rlhf.py): -P(toxic) from the pipeline, relative to the original
    gns = {"List": List}
    exec_sources(["irl/rlhf.get_toxicity_score"], gns)
    logits_gen = [[2.0, -1.5], [-0.5, 1.25], [0.3, 0.3], [-3.0, 4.0]]
    logits_orig = [[1.0, 0.0], [0.2, 0.1], [-2.0, 2.5], [0.0, -1.0]]

    def pipeline_out(logits):
        res = []
        for l in logits:
            p = torch.softmax(t64(l), dim=0)
            i = int(torch.argmax(p))  # ties: index 0 (neutral)
            res.append({"label": ["neutral", "toxic"][i], "score": float(p[i])})
        return res

    pg, po = pipeline_out(logits_gen), pipeline_out(logits_orig)
    rg, ro = gns["get_toxicity_score"](pg), gns["get_toxicity_score"](po)
    out["ground_truth_rlhf"] = {
        "about": (
            "train_rlhf.py's reward: the HF text-classification pipeline (s-nlp/roberta_toxicity_classifier, labels "
            "0 neutral, 1 toxic; top label and its softmax probability) on sample + '</s>' and on prompt + "
            "original_output + '</s>', each mapped by get_toxicity_score to -P(toxic), then generated minus "
            "original. The pipeline is simulated from the two logits here (softmax, argmax)."
        ),
        "logits_generated": logits_gen, "logits_original": logits_orig,
        "pipeline_generated": pg, "pipeline_original": po,
        "reward_generated": rg, "reward_original": ro,
        "final_rewards": [a - b for a, b in zip(rg, ro)],
        "source_get_toxicity_score": src("irl/rlhf.get_toxicity_score"),
        "source_reward_fn": src("irl/rlhf.reward_fn"),
    }

    # ground truth of the IRL evaluation (irl_utilities.get_reward_score, get_evaluation)
    ens = {"torch": torch, "device": torch.device("cpu"), "accuracy_score": None, "f1_score": None}
    exec_sources(["irl/util.get_reward_score", "irl/util.calculate_accuracy_f1"], ens)

    def _acc(y, p):
        return sum(int(a == b) for a, b in zip(y, p)) / len(y)

    def _f1(y, p):
        tp = sum(1 for a, b in zip(y, p) if a == 1 and b == 1)
        fp = sum(1 for a, b in zip(y, p) if a == 0 and b == 1)
        fn = sum(1 for a, b in zip(y, p) if a == 1 and b == 0)
        return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)

    ens["accuracy_score"], ens["f1_score"] = _acc, _f1  # sklearn's, for binary 0/1 labels with pos_label 1

    class _Cls:
        def __init__(self, table):
            self.table = table

        def to(self, d):
            return self

        def __call__(self, ids):
            return SimpleNamespace(logits=t64([self.table[ids.text]]))

    texts = ["t0", "t1", "t2", "t3", "t4"]
    cls_logits = [[2.0, -1.5], [-0.5, 1.25], [0.3, 0.3], [-3.0, 4.0], [1.0, -0.2]]
    learned_o1 = [-0.7, 0.4, -0.1, 1.2, 0.05]
    true_r = [float(ens["get_reward_score"](_Cls(dict(zip(texts, cls_logits))), tx, _StubTokenizer(), true_reward=True)) for tx in texts]
    learned_r = [float(ens["get_reward_score"](_StubRewardModel({tx: [0.0, o] for tx, o in zip(texts, learned_o1)}), tx, _StubTokenizer())) for tx in texts]
    acc, f1 = ens["calculate_accuracy_f1"](true_r, learned_r)
    out["ground_truth_irl_eval"] = {
        "about": (
            "irl_utilities.get_reward_score: the true reward is -logits[:, -1] of the RoBERTa classifier (minus the "
            "TOXIC LOGIT, not a probability); the learned reward is -head[:, -1]; no EOS is appended there (the "
            "RoBERTa tokenizer adds <s>...</s> itself; the Pythia one adds nothing, so the state is the last text "
            "token). calculate_accuracy_f1 labels reward > 0 as 0 and reward <= 0 as 1 (1 = 'toxic'), then sklearn "
            "accuracy_score and f1_score (positive label 1; computed here by hand for 0/1 labels)."
        ),
        "classifier_logits": cls_logits, "learned_head_o1": learned_o1,
        "true_rewards": true_r, "learned_rewards": learned_r,
        "true_labels": [0 if r > 0 else 1 for r in true_r], "learned_labels": [0 if r > 0 else 1 for r in learned_r],
        "accuracy": acc, "f1": f1,
        "source_get_reward_score": src("irl/util.get_reward_score"),
        "source_calculate_accuracy_f1": src("irl/util.calculate_accuracy_f1"),
    }
    out["demonstrations"] = {
        "about": "create_dataset_irl.py, quoted: greedy generate(max_length=100 incl. the prompt, temperature=0 is "
        "ignored since do_sample is off), the decoded output includes the prompt; rows 0..N-1 of the train split "
        "for 'train', N..2N-1 for 'test' (N = 500 in __main__); checkpoints [RLHF model -> *_non_toxic, "
        "EleutherAI/pythia-410m (the pretrained base, not the SFT model) -> *_toxic, 'random' skipped].",
        "source_get_generation": src("irl/ds.get_generation"),
        "source_generate_irl_demonstrations": src("irl/ds.generate_irl_demonstrations"),
        "source_main": src("irl/ds.main"),
    }
    out["commit"] = IRL_INFO
    out["sources"] = {k: {kk: SOURCES[k][kk] for kk in ("repo", "commit", "path", "lines")} for k in SOURCES if k.startswith("irl/")}
    return out


# ---------------------------------------------------------------------------


def verify(gitdirs):
    """Compares every excerpt with `git show COMMIT:PATH` at its line range (after dedent)."""
    by_repo = {"EleutherAI/trlx": gitdirs[0], "CarperAI/trlx": gitdirs[1], "ai4ai-lab/irl_for_llms": gitdirs[2]}
    bad = 0
    for k, s in SOURCES.items():
        text = subprocess.run(["git", "--git-dir", by_repo[s["repo"]], "show", f"{s['commit']}:{s['path']}"],
                              check=True, capture_output=True, text=True).stdout.split("\n")
        a, b = map(int, s["lines"].split("-"))
        want = textwrap.dedent("\n".join(text[a - 1 : b])) + "\n"
        if want != s["text"]:
            bad += 1
            print("MISMATCH", k)
    print(f"{len(SOURCES) - bad}/{len(SOURCES)} excerpts match")
    return bad == 0


def main(argv):
    if len(argv) >= 2 and argv[1] == "--verify":
        return 0 if verify(argv[2:5]) else 1
    if len(argv) != 2:
        print(__doc__)
        return 2
    outdir = argv[1]
    os.makedirs(outdir, exist_ok=True)
    nss = {ver: trlx_namespace(ver) for ver in VERSIONS}
    meta = {"versions": VERSION_INFO, "irl": IRL_INFO, "torch": torch.__version__, "numpy": np.__version__}
    for name, fn in (
        ("gae.json", gen_gae),
        ("ppo_loss.json", gen_loss),
        ("whiten.json", gen_whiten),
        ("running_moments.json", gen_running_moments),
        ("kl_controller.json", gen_kl_controller),
        ("make_experience.json", gen_make_experience),
        ("ppo_step.json", gen_pipeline),
        ("learn_loop.json", gen_learn),
    ):
        d = fn(nss)
        d["meta"] = meta
        write(outdir, name, d)
    d = gen_lr()
    d["meta"] = meta
    write(outdir, "lr_schedule.json", d)
    d = gen_irl()
    d["meta"] = meta
    write(outdir, "irl_for_llms.json", d)
    write(outdir, "sources.json", {"meta": meta, "sources": SOURCES})
    return 0


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(main(sys.argv))
