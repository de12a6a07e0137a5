"""Record scenarios of record_traces.py on a throwaway Asterisk started from a build
(ASTERISK_PREFIX, see ari_controller/testing/asterisk.py) with the project's configuration,
plus the barge-in callers of extensions.conf (its section from "; Barge-in" on).

usage: python tests/ari_traces/record_on_throwaway.py OUTDIR scenario [scenario ...]
"""

import asyncio
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

from ari_controller.testing.asterisk import ThrowawayAsterisk  # noqa: E402


def main() -> None:
    text = (HERE / "extensions.conf").read_text()
    asterisk = ThrowawayAsterisk(
        extra_dialplan=text[text.index("; Barge-in") :], ari_user="acceptance"
    )
    asterisk.start()
    try:
        os.environ.update(
            ARI_URL=asterisk.ari_url,
            ARI_USER=asterisk.ari_user,
            ARI_PASSWORD=asterisk.ari_password,
        )
        import record_traces  # reads the environment when imported

        asyncio.run(record_traces.main(sys.argv[1], sys.argv[2:]))
    finally:
        asterisk.stop()


if __name__ == "__main__":
    main()
