"""Settings come from the environment, and production settings pass Django's deploy checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from audit.log.signing import generate_private_pem
from portal.platform.env import env_bool, env_int, env_secret

ROOT = Path(__file__).resolve().parents[2]


def run_manage(args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    dropped = {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE",
               "AUDIT_SIGNING_KEY", "AUDIT_SIGNING_KEY_FILE", "HTTPS"}
    clean = {k: v for k, v in os.environ.items() if k not in dropped}
    clean.update({"STEWARD_DATA_DIR": str(tmp_path)}, **env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120
    )


class EnvTests:
    def test_bool_parses_and_refuses_garbage(self, monkeypatch) -> None:
        monkeypatch.setenv("X_FLAG", "yes")
        assert env_bool("X_FLAG", default=False) is True
        monkeypatch.setenv("X_FLAG", "perhaps")
        with pytest.raises(ImproperlyConfigured, match="X_FLAG"):
            env_bool("X_FLAG", default=False)

    def test_int_minimum(self, monkeypatch) -> None:
        monkeypatch.setenv("X_INT", "0")
        with pytest.raises(ImproperlyConfigured, match="minimum"):
            env_int("X_INT", default=5, minimum=1)

    def test_secret_from_file(self, monkeypatch, tmp_path) -> None:
        path = tmp_path / "secret"
        path.write_text("s3cret\n")
        monkeypatch.setenv("X_SECRET_FILE", str(path))
        monkeypatch.delenv("X_SECRET", raising=False)
        assert env_secret("X_SECRET") == "s3cret"
        monkeypatch.setenv("X_SECRET", "other")
        with pytest.raises(ImproperlyConfigured, match="not both"):
            env_secret("X_SECRET")


class DeploySettingsTests:
    PRODUCTION: dict[str, str] = {
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
        "SECRET_KEY": "x" * 30 + "-a-long-random-production-secret-" + "y" * 20,
        "ALLOWED_HOSTS": "steward.example.org",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
    }

    def test_production_variables_pass_check_deploy_secure_by_default(self, tmp_path) -> None:
        """No HTTPS variable at all: the site is taken to be behind TLS."""
        result = run_manage(["check", "--deploy", "--fail-level", "WARNING"],
                            {**self.PRODUCTION, "AUDIT_SIGNING_KEY": generate_private_pem()}, tmp_path)
        assert result.returncode == 0, result.stderr + result.stdout

    def test_only_an_explicit_plain_http_site_is_warned_of(self, tmp_path) -> None:
        result = run_manage(["check", "--deploy", "--fail-level", "WARNING"],
                            {**self.PRODUCTION, "AUDIT_SIGNING_KEY": generate_private_pem(), "HTTPS": "false"},
                            tmp_path)
        assert result.returncode != 0 and "SECURE_SSL_REDIRECT" in result.stdout + result.stderr

    def test_database_without_audit_key_fails_at_start(self, tmp_path) -> None:
        result = run_manage(
            ["check"],
            {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test", "SECRET_KEY": "k" * 60},
            tmp_path,
        )
        assert result.returncode != 0
        assert "AUDIT_SIGNING_KEY" in result.stderr

    def test_database_without_secret_key_fails_at_start(self, tmp_path) -> None:
        result = run_manage(["check"], {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test"}, tmp_path)
        assert result.returncode != 0
        assert "SECRET_KEY (or SECRET_KEY_FILE) is required" in result.stderr

    def test_embedded_default_generates_and_keeps_a_secret(self, tmp_path) -> None:
        assert run_manage(["check"], {}, tmp_path).returncode == 0
        first = (tmp_path / "secret_key").read_text()
        assert run_manage(["check"], {}, tmp_path).returncode == 0
        assert (tmp_path / "secret_key").read_text() == first and len(first) >= 50
        assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
