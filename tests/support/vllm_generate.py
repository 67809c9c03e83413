"""Run by a real vLLM's interpreter (MMEXPORT_VLLM_PYTHON): greedy tokens and logprobs from the
image's pixels (a clip's frames: FRAMES.npy, [F, H, W, 3]) through vLLM's own vision tower, from
embeddings mmexport's encoder service returned, and from those embeddings perturbed. Prints one
JSON line.

    python vllm_generate.py FOLDER IMAGE.png|FRAMES.npy EMBEDDINGS.pt PROMPT"""

import json
import os
import sys

if __name__ == "__main__":  # vLLM starts its workers with spawn
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    import numpy as np
    import torch
    from PIL import Image
    from vllm import LLM, SamplingParams

    folder, image_path, embeddings_path, prompt = sys.argv[1:5]
    llm = LLM(model=folder, dtype="float32", enforce_eager=True, max_model_len=256, max_num_seqs=2, enable_mm_embeds=True, seed=0)
    params = SamplingParams(temperature=0.0, max_tokens=8, logprobs=1)
    value = torch.load(embeddings_path)
    perturbed = (
        {k: (v + 0.05 * torch.randn_like(v) if k.endswith("_embeds") else v) for k, v in value.items()}
        if isinstance(value, dict)
        else value + 0.05 * torch.randn_like(value)
    )
    if image_path.endswith(".npy"):  # a clip: vLLM wants its metadata (as its own dummy clips carry it), frames taken as they are
        frames = np.load(image_path)
        metadata = {"fps": 2.0, "duration": len(frames) / 2.0, "total_num_frames": len(frames), "frames_indices": list(range(len(frames)))}
        kind, media = "video", (frames, metadata | {"video_backend": "opencv", "do_sample_frames": False})
    else:
        kind, media = "image", Image.open(image_path).convert("RGB")
    results = {}
    for name, item in (("pixels", media), ("embeddings", value), ("perturbed", perturbed)):
        out = llm.generate([{"prompt": prompt, "multi_modal_data": {kind: item}}], params, use_tqdm=False)[0].outputs[0]
        results[name] = {"tokens": list(out.token_ids), "logprobs": [step[token].logprob for token, step in zip(out.token_ids, out.logprobs)]}
    print("MMEXPORT-VLLM " + json.dumps(results), flush=True)
