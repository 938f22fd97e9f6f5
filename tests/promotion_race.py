"""One promoter for the race test: python promotion_race.py URI MODEL VERSION COMPARED READY GO.

Imports first, touches READY, waits for GO to exist, then runs register's promotion with a
blessing decided against version COMPARED and prints ``promoted<TAB>reason``. The test sets
CONVFLOW_TEST_PROMOTION_PAUSE_S to widen the window between reading and setting @champion.
"""

import sys
import time
from pathlib import Path

from convflow.components.promotion import promote
from mlflow import MlflowClient

if __name__ == "__main__":
    uri, model, version, compared, ready, go = sys.argv[1:7]
    client = MlflowClient(uri, registry_uri=uri)
    client.search_registered_models(max_results=1)  # connection warm before the start line
    Path(ready).touch()
    while not Path(go).exists():
        time.sleep(0.01)
    blessing = {"blessed": True, "reasons": ["race test"], "champion": {"version": compared}}
    promoted, reason = promote(client, model, version, blessing, run_id=f"race-{version}")
    print(f"{promoted}\t{reason}", flush=True)
