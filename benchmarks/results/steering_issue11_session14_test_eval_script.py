"""Session 14: the one test evaluation of the dev-qualified candidate (run at
the candidate config, through the run's own backend and vectors)."""
import json, sys, time
from pathlib import Path
REPO = Path("/work/main")
from agents.hf_backend import build_hf_backend
from orchestrator.assemble import backend_spec
from orchestrator.config_loader import load_config
from agents.steering.evaluation import evaluate_steering

sets = [f"storage.root={REPO / 'storage'}"] + sys.argv[2:]
cfg = load_config(REPO / "configs/run.fast.yaml", sets).config
b = build_hf_backend(backend_spec(cfg))
s = b.steering_cfg
print(b.vectors.meta, flush=True)
assert "mixing" in b.vectors.meta
t0 = time.perf_counter()
rep = evaluate_steering(b.model, b.tokenizer, b.vectors, s.all_layers(), s.strength, n_random=100, seed=0)
print(rep.to_text())
row = {"setting": {"config_sets": sys.argv[2:], "vectors_meta": {k: str(v) for k, v in b.vectors.meta.items()}}, **rep.to_dict(), "seconds": round(time.perf_counter() - t0, 1)}
Path(sys.argv[1]).write_text(json.dumps(row) + "\n")
