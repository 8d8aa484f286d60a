"""A full-size stand-in for RoentGen: Stable Diffusion 1.x's architecture with random weights.

RoentGen is a fine-tuned Stable Diffusion 1.x: a UNet2DConditionModel of 860M parameters
(block_out_channels 320/640/1280/1280, 2 layers per block, 8 attention heads, cross-attention
on 768-wide text states), the SD 1.x AutoencoderKL (84M; 512 px images, 64 x 64 x 4 latents) and
CLIP ViT-L/14's text encoder (123M; 12 layers, hidden 768). This module builds the same
architecture from configs, offline, with seeded random weights, so a GPU's throughput is measured
on the real amount of compute without the gated weights. Images are noise: the stand-in measures
speed, never an audit verdict.

The tokenizer is character level (CLIP's BPE vocabulary would be a download); prompts are padded
to CLIP's 77 tokens either way, so the text encoder does the same work. ``small=True`` keeps every
layer and block type and divides the widths (UNet by 10, VAE by 4, text encoder by 8), for tests.

    python -m pytest_synthcxr.models.generators.standin --out DIR [--small] [--device cuda]

writes a diffusers pipeline folder (safetensors; 4.3 GB in float32 at full size) that
``--synthcxr-model=DIR`` or ``DiffusersGenerator(DIR)`` loads like RoentGen's.
"""

from __future__ import annotations

import argparse
import string
from pathlib import Path
from typing import Any

SEED = 0
#: SD 1.x UNet (runwayml/stable-diffusion-v1-5 unet/config.json, as RoentGen ships it)
UNET = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "block_out_channels": (320, 640, 1280, 1280),
    "layers_per_block": 2,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,  # diffusers' name for the number of heads in SD 1.x configs
    "norm_num_groups": 32,
}
#: SD 1.x AutoencoderKL (vae/config.json)
VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 512,
}
#: CLIP ViT-L/14 text encoder (openai/clip-vit-large-patch14 text_config)
TEXT = {
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "projection_dim": 768,
    "bos_token_id": 0,  # the character tokenizer's ids (CLIP's own are 49406 / 49407)
    "eos_token_id": 1,
    "pad_token_id": 1,
}
#: SD 1.x's PNDM schedule (scheduler/scheduler_config.json)
SCHEDULER = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "skip_prk_steps": True, "steps_offset": 1}
#: the small variant: same layers, narrower (each width stays a multiple of its norm groups and heads)
SMALL_DIVISORS = {"unet": 10, "vae": 4, "text": 8}


def configs(small: bool = False) -> dict[str, dict[str, Any]]:
    """The three component configs, full size or the narrow test variant."""
    unet, vae, text = dict(UNET), dict(VAE), dict(TEXT)
    if small:
        k = SMALL_DIVISORS
        unet["block_out_channels"] = tuple(c // k["unet"] for c in UNET["block_out_channels"])
        unet["cross_attention_dim"] = TEXT["hidden_size"] // k["text"]
        vae["block_out_channels"] = tuple(c // k["vae"] for c in VAE["block_out_channels"])
        text.update(hidden_size=TEXT["hidden_size"] // k["text"], intermediate_size=TEXT["intermediate_size"] // k["text"], projection_dim=TEXT["projection_dim"] // k["text"])
    return {"unet": unet, "vae": vae, "text_encoder": text}


def char_tokenizer(max_length: int = 77) -> Any:
    """A character-level CLIPTokenizer built offline (no merges: every printable character alone
    and word-final); pads and truncates to CLIP's 77 tokens like the real one."""
    from transformers import CLIPTokenizer

    chars = sorted(set(string.ascii_lowercase + string.digits + string.punctuation))
    vocab: dict[str, int] = {}
    for token in ["<|startoftext|>", "<|endoftext|>"] + chars + [c + "</w>" for c in chars]:
        vocab.setdefault(token, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length)


def build_components(small: bool = False, device: str = "meta", seed: int = SEED) -> dict[str, Any]:
    """UNet, VAE and text encoder, built on ``device`` ("meta": shapes only, nothing allocated)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    c = configs(small)
    if device != "meta":
        torch.manual_seed(seed)
    with torch.device(device):  # random init where the weights will live (fast on a GPU)
        return {
            "unet": UNet2DConditionModel(**c["unet"]),
            "vae": AutoencoderKL(**c["vae"]),
            "text_encoder": CLIPTextModel(CLIPTextConfig(**c["text_encoder"])),
        }


def build_pipeline(small: bool = False, device: str = "cpu", seed: int = SEED) -> Any:
    """The stand-in as a StableDiffusionPipeline in memory (float32, safety checker off)."""
    from diffusers import PNDMScheduler, StableDiffusionPipeline

    parts = build_components(small, device, seed)
    return StableDiffusionPipeline(
        **parts,
        tokenizer=char_tokenizer(),
        scheduler=PNDMScheduler(**SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def save(out: Path, small: bool = False, device: str = "cpu", seed: int = SEED) -> Path:
    """Build the stand-in and write it as a diffusers pipeline folder (safetensors)."""
    build_pipeline(small, device, seed).save_pretrained(out, safe_serialization=True)
    return out


def parameter_counts(small: bool = False) -> dict[str, int]:
    """Parameters per component, counted on the meta device (nothing allocated)."""
    return {name: sum(p.numel() for p in module.parameters()) for name, module in build_components(small, "meta").items()}


def unet_flops(small: bool = False, side: int = 512, batch: int = 1, text_tokens: int = 77) -> int:
    """FLOPs of one UNet forward pass (one denoising step of ``batch`` images, no guidance) at
    ``side`` px, counted by torch.utils.flop_counter on the meta device: exact for the matmuls,
    convolutions and attention that dominate; norms and activations are not counted."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    parts = build_components(small, "meta")
    unet, vae = parts["unet"], parts["vae"]
    latent = side // 2 ** (len(vae.config.block_out_channels) - 1)
    x = torch.empty(batch, unet.config.in_channels, latent, latent, device="meta")
    text = torch.empty(batch, text_tokens, unet.config.cross_attention_dim, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        unet(x, torch.tensor([500] * batch, device="meta"), encoder_hidden_states=text)
    return int(counter.get_total_flops())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pytest_synthcxr.models.generators.standin", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the pipeline folder here")
    parser.add_argument("--small", action="store_true", help="the narrow test variant (same layers)")
    parser.add_argument("--device", default="cpu", help="where the random weights are initialised (cuda is faster); default cpu")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    counts = parameter_counts(args.small)
    print(", ".join(f"{k} {v / 1e6:.1f}M" for k, v in counts.items()) + f" parameters; UNet {unet_flops(args.small) / 1e9:.0f} GFLOPs per step at 512 px")
    if args.out is not None:
        print(save(args.out, args.small, args.device, args.seed))


if __name__ == "__main__":
    main()
