"""What a LoRA checkpoint of Cosmos3-Nano's geometry writes, merged (`lora_save = "merged"`) against adapter-only
(`"adapter"`), counted on the meta device (no weights are allocated: runs anywhere in seconds). Both also write the
AdamW state of the trained parameters.

    python benchmarks/lora_checkpoint_sizes.py [--rank 16]
"""

from __future__ import annotations

import json

import torch
from _args import at_least, parser_for


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--rank", type=at_least(1), default=16, help="finetune.lora_rank (default 16)")
    args = parser.parse_args()

    from peft import LoraConfig

    from worldpolicy.engine.loading import SAMPLES_PER_TENSOR
    from worldpolicy.testing import NANO, _random_modules, build_tokenizer
    from worldpolicy.train.config import FinetuneConfig

    with torch.device("meta"):
        transformer, _ = _random_modules(NANO, len(build_tokenizer(NANO.vocab_size)))
    weights = sum(p.numel() for p in transformer.parameters())
    heads = sum(p.numel() for n, p in transformer.named_parameters()
                if n.startswith(("action_proj_in.", "action_proj_out.")))
    tensors = len(transformer.state_dict())
    transformer.requires_grad_(False)
    transformer.add_adapter(LoraConfig(r=args.rank, lora_alpha=args.rank, target_modules=FinetuneConfig().lora_targets))
    lora = sum(p.numel() for n, p in transformer.named_parameters() if "lora_" in n)
    gb = 1e9
    print(json.dumps({
        "transformer_parameters": weights,
        "merged_transformer_fp32_GB": round(weights * 4 / gb, 2),
        "adapter_fp32_GB": round(lora * 4 / gb, 3),
        "trained_action_heads_fp32_GB": round(heads * 4 / gb, 3),
        "base_model_json_samples": tensors * SAMPLES_PER_TENSOR,
        "adamw_state_GB_either_way": round((lora + heads) * 8 / gb, 3),
        "adapter_checkpoint_vs_merged": round((lora + heads) / weights, 5),
    }, indent=1))


if __name__ == "__main__":
    main()
