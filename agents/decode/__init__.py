"""The fast decode path for CUDA: a static KV cache per batch-size bucket, the
one-token step (model, steering, sampling) captured once per bucket as a CUDA
graph and replayed, a decode attention that reads the grouped K/V cache in
place, and a sampler that works on a top-k shortlist.

Modules: `sampling` (the shortlist sampler), `attention` (grouped decode
attention), `kernels` (the Triton kernels, CUDA only), `llama_step` (the
one-token step of a Llama-family model over a static cache), `cache` (the
static buffers of a bucket), `decoder` (prefill, capture, replay: the loop).
`agents.hf_backend` keeps its simple loop as the reference path (CPU, and the
oracle in tests) and hands a batch to `decoder.FastDecoder` when it applies."""
