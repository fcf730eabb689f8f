"""Runs on several processes through torch.distributed (torchrun or the
built-in launcher; NCCL on GPUs, gloo on CPU), in one of two modes:

- data: every rank holds a replica; rank 0 owns the world, scheduler, memory,
  dumps, checkpoint and live view, and splits each batched call's requests
  across the ranks (`partition`), which generate and send their rows back;
- tensor: transformers' tensor parallelism splits every weight matrix across
  the ranks; every rank runs the same batched call in lockstep and rank 0
  keeps the result.

Modules: `ranks` (this process's place in the run, the process groups and
the control channel), `partition` (balanced split of a batch), `messages`
(what crosses the control channel), `backend` (rank 0's Backend wrapper and
the workers' serve loop), `replicas` (building every rank's backend, vectors
built once), `plan` (world size and mode), `launch` (the built-in launcher),
`rank` (the program each launched rank runs), `entry` (what the run command
calls). Nothing here knows about the world,
the scheduler or the dumps; the run side sees one Backend."""
