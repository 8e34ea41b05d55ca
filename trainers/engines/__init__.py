"""Generation engines: the interface (base), transformers (hf), vLLM (vllm), a Ray pool of either
(pool, weight_sync, ray_reaper), and the one factory that builds them (factory)."""
