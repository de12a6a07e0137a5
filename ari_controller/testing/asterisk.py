"""A throwaway real Asterisk for the real-Asterisk suite and benchmark, started from a build.

Asterisk is in no package registry of these machines; it is built from its source into a
prefix (`ASTERISK_PREFIX`, default /opt/asterisk). This module starts that build with the
project's own `asterisk/` configuration rendered into a temporary directory: ARI on a free
loopback port, the project's dialplan (`from-pstn`, `fallback`, the scripted `caller` and
`responders` phones) and hold music, plus whatever dialplan a test adds. Sounds come from the
Debian packages asterisk-core-sounds-en-wav and asterisk-moh-opsound-wav; prompts rendered by
the controller go to `sounds_dir / "callrouting"`, which this Asterisk plays as
`sound:callrouting/<name>`.

SIP (chan_pjsip) is not loaded: every phone is a Local channel running a dialplan script, so
nothing listens beyond loopback.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from ari_controller.testing.postgres import free_port

DEFAULT_PREFIX = Path("/opt/asterisk")
REPO_ASTERISK_DIR = Path(__file__).resolve().parents[2] / "asterisk"
DEBIAN_SOUNDS = Path("/usr/share/asterisk/sounds")
DEBIAN_MOH = Path("/usr/share/asterisk/moh")

# What the call paths need and nothing more: ARI and Stasis, Local channels, the dialplan
# applications of the scripted phones and of the fallback, bridges, hold music, recordings,
# wav/ulaw media, and app_followme for the benchmark's Asterisk-only baseline.
MODULES = (
    "res_timing_timerfd.so",
    "res_http_websocket.so",
    "res_websocket_client.so",
    "res_curl.so",
    "res_sorcery_config.so",
    "res_sorcery_memory.so",
    "res_sorcery_astdb.so",
    "res_stasis.so",
    "res_stasis_answer.so",
    "res_stasis_playback.so",
    "res_stasis_recording.so",
    "res_stasis_snoop.so",
    "res_stasis_device_state.so",
    "res_ari.so",
    "res_ari_model.so",
    "res_ari_applications.so",
    "res_ari_asterisk.so",
    "res_ari_bridges.so",
    "res_ari_channels.so",
    "res_ari_device_states.so",
    "res_ari_endpoints.so",
    "res_ari_events.so",
    "res_ari_playbacks.so",
    "res_ari_recordings.so",
    "res_ari_sounds.so",
    "res_musiconhold.so",
    "res_http_media_cache.so",
    "app_stasis.so",
    "app_dial.so",
    "app_playback.so",
    "app_senddtmf.so",
    "app_echo.so",
    "app_followme.so",
    "app_voicemail.so",
    "app_record.so",
    "pbx_config.so",
    "func_callerid.so",
    "func_channel.so",
    "func_strings.so",
    "func_logic.so",
    "func_talkdetect.so",
    "bridge_simple.so",
    "bridge_softmix.so",
    "bridge_holding.so",
    "bridge_native_rtp.so",
    "chan_bridge_media.so",
    "codec_ulaw.so",
    "codec_alaw.so",
    "codec_gsm.so",
    "codec_resample.so",
    "codec_a_mu.so",
    "format_wav.so",
    "format_pcm.so",
    "format_gsm.so",
    "format_sln.so",
)


# The tones the scripted phones' Ringing(), Busy() and Congestion() play.
_INDICATIONS = """[general]
country = us
[us]
description = United States
ringcadence = 2000,4000
dial = 350+440
busy = 480+620/500,0/500
ring = 440+480/2000,0/4000
congestion = 480+620/250,0/250
callwaiting = 440/300,0/10000
"""


class AsteriskNotFoundError(RuntimeError):
    """No Asterisk build in the prefix."""


class AsteriskStartError(RuntimeError):
    """Asterisk did not start or ARI did not answer; the message carries its log's end."""


def find_asterisk_prefix(prefix: str | Path | None = None) -> Path:
    """The build to use: `prefix`, else $ASTERISK_PREFIX, else /opt/asterisk."""
    root = Path(prefix or os.environ.get("ASTERISK_PREFIX") or DEFAULT_PREFIX)
    binary = root / "sbin" / "asterisk"
    if not os.access(binary, os.X_OK):
        raise AsteriskNotFoundError(
            f"no Asterisk build at {root} (no executable {binary}): build Asterisk 22 from "
            "source into a prefix and point ASTERISK_PREFIX at it (README: 'Asterisk without "
            "a distribution package')"
        )
    if not (root / "lib" / "asterisk" / "modules" / "res_ari.so").exists():
        raise AsteriskNotFoundError(f"the Asterisk build at {root} has no ARI (res_ari.so)")
    return root


def _set_option(text: str, key: str, value: str) -> str:
    """Set `key = value` in the [general] section of a shipped .conf file."""
    pattern = re.compile(rf"^;?\s*{re.escape(key)}\s*=.*$", re.MULTILINE)
    if pattern.search(text):
        return pattern.sub(f"{key} = {value}", text, count=1)
    return text.replace("[general]\n", f"[general]\n{key} = {value}\n", 1)


class ThrowawayAsterisk:
    """Start with `start()` / `with`, use `ari_url` and `sounds_dir`, stop with `stop()`."""

    def __init__(
        self,
        prefix: str | Path | None = None,
        *,
        app: str = "callrouting",
        ari_user: str = "callrouting",
        ari_password: str | None = None,
        extra_dialplan: str = "",
        session_limit: int | None = None,
        extra_files: dict[str, str] | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.prefix = find_asterisk_prefix(prefix)
        self.app = app
        self.ari_user = ari_user
        self.ari_password = ari_password or secrets.token_hex(12)
        self.extra_dialplan = extra_dialplan
        self.session_limit = session_limit
        # More configuration files by name (e.g. "followme.conf"), written last: they replace
        # a rendered file of the same name.
        self.extra_files = dict(extra_files or {})
        self.startup_timeout = startup_timeout
        self.port = 0
        self.root: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    # ---- where things are -------------------------------------------------------------------

    @property
    def binary(self) -> str:
        return str(self.prefix / "sbin" / "asterisk")

    @property
    def ari_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ari"

    @property
    def _dir(self) -> Path:
        if self.root is None:
            raise RuntimeError("ThrowawayAsterisk is not started")
        return self.root

    @property
    def etc(self) -> Path:
        return self._dir / "etc"

    @property
    def sounds_dir(self) -> Path:
        """Asterisk's sounds directory: prompts go to `sounds_dir / <sound_prefix>`."""
        return self._dir / "data" / "sounds"

    @property
    def recordings_dir(self) -> Path:
        return self._dir / "spool" / "recording"

    @property
    def log_file(self) -> Path:
        return self._dir / "log" / "messages.log"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # ---- life -------------------------------------------------------------------------------

    def start(self) -> ThrowawayAsterisk:
        self.root = Path(tempfile.mkdtemp(prefix="throwaway-asterisk-"))
        try:
            self.port = free_port()
            self._render()
            self._spawn()
            self._wait_for_ari()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> ThrowawayAsterisk:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def cli(self, command: str, timeout: float = 10.0) -> str:
        """Run one CLI command on this Asterisk (`asterisk -rx`)."""
        result = subprocess.run(
            [self.binary, "-C", str(self.etc / "asterisk.conf"), "-rx", command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return result.stdout

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # ---- set-up -----------------------------------------------------------------------------

    def _render(self) -> None:
        root = self._dir
        for sub in ("etc", "run", "log", "lib", "spool/recording", "data/sounds", "keys"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        sounds = self.sounds_dir
        for language in ("en", "en_US"):
            if (DEBIAN_SOUNDS / language).exists():
                (sounds / language).symlink_to(DEBIAN_SOUNDS / language)
        if DEBIAN_MOH.exists():
            (root / "data" / "moh").symlink_to(DEBIAN_MOH)
        # The build's own data (XML documentation, which configuration parsing needs; ARI's
        # API description), shared read-only.
        for item in (self.prefix / "var" / "lib" / "asterisk").iterdir():
            if item.name not in ("sounds", "moh", "keys"):
                (root / "data" / item.name).symlink_to(item)
        etc = self.etc
        modules_dir = self.prefix / "lib" / "asterisk" / "modules"
        (etc / "asterisk.conf").write_text(
            "[directories]\n"
            f"astetcdir => {etc}\n"
            f"astmoddir => {modules_dir}\n"
            f"astvarlibdir => {root / 'lib'}\n"
            f"astdbdir => {root / 'lib'}\n"
            f"astkeydir => {root / 'keys'}\n"
            f"astdatadir => {root / 'data'}\n"
            f"astagidir => {root / 'data' / 'agi-bin'}\n"
            f"astspooldir => {root / 'spool'}\n"
            f"astrundir => {root / 'run'}\n"
            f"astlogdir => {root / 'log'}\n"
            f"astsbindir => {self.prefix / 'sbin'}\n"
            "[options]\n"
            "transmit_silence = no\n"
            "documentation_language = en_US\n"
            "defaultlanguage = en\n"
        )
        loads = "".join(f"load => {name}\n" for name in MODULES if (modules_dir / name).exists())
        (etc / "modules.conf").write_text(f"[modules]\nautoload = no\n{loads}")
        (etc / "logger.conf").write_text(
            "[general]\ndateformat = %F %T.%3q\n[logfiles]\nmessages.log => notice,warning,error\n"
        )
        shipped = REPO_ASTERISK_DIR
        http = (shipped / "http.conf").read_text()
        http = _set_option(http, "bindport", str(self.port))
        http = _set_option(http, "bindaddr", "127.0.0.1")
        if self.session_limit is not None:
            http = _set_option(http, "sessionlimit", str(self.session_limit))
        (etc / "http.conf").write_text(http)
        ari = (shipped / "ari.conf").read_text()
        ari = re.sub(r"^\[callrouting\]$", f"[{self.ari_user}]", ari, flags=re.MULTILINE)
        ari = re.sub(r"^password = .*$", f"password = {self.ari_password}", ari, flags=re.M)
        (etc / "ari.conf").write_text(ari)
        dialplan = (shipped / "extensions.conf").read_text()
        dialplan = re.sub(r"^STASIS_APP = .*$", f"STASIS_APP = {self.app}", dialplan, flags=re.M)
        (etc / "extensions.conf").write_text(dialplan + "\n" + self.extra_dialplan)
        moh = (shipped / "musiconhold.conf").read_text()
        moh = moh.replace("/var/lib/asterisk/moh/callrouting", str(root / "data" / "moh"))
        (etc / "musiconhold.conf").write_text(moh)
        (etc / "voicemail.conf").write_text("[general]\nformat = wav\n[default]\n9999 => 0000\n")
        (etc / "followme.conf").write_text("[general]\n")
        # Call detail records and channel events are off: nothing reads them here.
        (etc / "cdr.conf").write_text("[general]\nenable = no\n")
        (etc / "cel.conf").write_text("[general]\nenable = no\n")
        (etc / "indications.conf").write_text(_INDICATIONS)
        for quiet in ("features", "acl", "udptl", "websocket_client", "res_http_media_cache"):
            (etc / f"{quiet}.conf").write_text("")
        for name, text in self.extra_files.items():
            (etc / name).write_text(text)

    def _spawn(self) -> None:
        argv = [
            self.binary,
            "-f",  # foreground: the pid we hold is Asterisk's own
            "-n",  # no colours in the log
            "-C",
            str(self.etc / "asterisk.conf"),
        ]
        console = (self._dir / "log" / "console.log").open("ab")
        with console:
            self._process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                cwd=self._dir,
                start_new_session=True,  # a Ctrl-C in the test run does not reach it first
            )

    def _wait_for_ari(self) -> None:
        """Until ARI answers (Asterisk says 503 while its modules load)."""
        deadline = time.monotonic() + self.startup_timeout
        password_manager = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        password_manager.add_password(None, self.ari_url, self.ari_user, self.ari_password)
        opener = urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(password_manager))
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise AsteriskStartError(f"Asterisk exited at start-up:\n{self._console_tail()}")
            try:
                with opener.open(f"{self.ari_url}/asterisk/info", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise AsteriskStartError(
            f"ARI did not answer within {self.startup_timeout} s:\n{self._console_tail()}"
        )

    def _console_tail(self, lines: int = 40) -> str:
        try:
            text = (self._dir / "log" / "console.log").read_text(errors="replace")
        except OSError:
            text = "(no console log)"
        return "\n".join(text.splitlines()[-lines:])
