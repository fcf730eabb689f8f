"""steersim's run side: config, world, scheduler, tick engine, storage, live view, CLI."""
