"""The daemon: the loop that runs probes, feeds the core and executes its actions."""
