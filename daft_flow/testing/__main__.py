"""``python -m daft_flow.testing --rpm 600 ...``: the fault server in its own process."""
from daft_flow.testing.fault_server import main

main()
