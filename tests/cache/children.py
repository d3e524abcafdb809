"""Child Python processes of the cache tests."""
import os
import pathlib

import daft_flow as dflow


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child Python: it imports the daft_flow this process runs (a built
    checkout or the installed wheel), never an unbuilt checkout that happens to be the cwd."""
    parent = str(pathlib.Path(dflow.__file__).resolve().parents[1])
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [parent, os.environ.get("PYTHONPATH")]))
    return env
