"""Security rules that hold for the whole code base: no shell anywhere, secrets only through
Dagster's EnvVar (never in code, config files or the UI)."""

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ["media_assets", "media_assets_tests", "benchmarks", "fuzz"]
SHELL_CALLS = {"os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput",
               "asyncio.create_subprocess_shell", "pty.spawn", "commands.getoutput"}
PROCESS_CALLS = {"subprocess.run", "subprocess.call", "subprocess.check_call",
                 "subprocess.check_output", "subprocess.Popen"}


def _python_files():
    for folder in SCANNED:
        yield from sorted((ROOT / folder).rglob("*.py"))


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def _is_text(node: ast.AST) -> bool:
    """A command given as one string (a shell would split it), not as a list of arguments."""
    return (isinstance(node, ast.Constant) and isinstance(node.value, str)) or isinstance(
        node, ast.JoinedStr) or (isinstance(node, ast.BinOp) and (
            _is_text(node.left) or _is_text(node.right)))


def shell_uses(source: str, name: str = "<code>") -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        called = _dotted(node.func)
        where = f"{name}:{node.lineno}"
        if any(k.arg == "shell" and not (isinstance(k.value, ast.Constant)
                                         and k.value.value is False) for k in node.keywords):
            found.append(f"{where}: shell=")
        if called in SHELL_CALLS or called.endswith((".system", ".popen")):
            found.append(f"{where}: {called}")
        if called in PROCESS_CALLS and node.args and _is_text(node.args[0]):
            found.append(f"{where}: {called} with a command string")
    return found


def test_the_scanner_finds_every_kind_of_shell_use():
    bad = '''
import os, subprocess
os.system("ls")
subprocess.run("ls -l", shell=True)
subprocess.check_output(f"ls {x}")
subprocess.Popen(["ls"], shell=1)
os.popen("id")
subprocess.getoutput("id")
'''
    assert len(shell_uses(bad)) == 7
    assert shell_uses('import subprocess\nsubprocess.run(["ls", "-l"], check=True)\n') == []


def test_no_shell_invocation_anywhere():
    found = [hit for path in _python_files()
             for hit in shell_uses(path.read_text(), str(path.relative_to(ROOT)))]
    assert found == []
    assert list((ROOT / "media_assets").rglob("*.sh")) == []  # no shell scripts shipped


def test_secrets_come_only_through_envvar(tmp_path):
    """With the variables set, the resources hold EnvVar references (resolved by Dagster at
    run time, shown by name in the UI), never the values."""
    secret = "https://hooks.example.invalid/services/T000/B000/very-secret-token"
    code = (
        "import json\n"
        "from dagster import EnvVar\n"
        "from media_assets.definitions import defs\n"
        "alerts = defs.resources['alerts']\n"
        "print(json.dumps({'envvar': isinstance(alerts.webhook_url, EnvVar),\n"
        "                  'name': alerts.webhook_url.env_var_name}))\n")
    env = {**os.environ, "MEDIA_ASSETS_ALERT_WEBHOOK_URL": secret,
           "PYTHONPATH": str(ROOT), "DAGSTER_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120, check=True, cwd=tmp_path)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"envvar": True, "name": "MEDIA_ASSETS_ALERT_WEBHOOK_URL"}
    assert "env: MEDIA_ASSETS_PG_URL" in (ROOT / "deploy" / "dagster.postgres.yaml").read_text()


@pytest.mark.parametrize("pattern", [
    r"hooks\.slack\.com/services/T", r"postgresql(\+\w+)?://\w+:[^@\s]+@",
    r"aws_secret_access_key\s*[:=]\s*[\"']?[A-Za-z0-9/+]{20,}",  # a value, not the field
    r"AKIA[0-9A-Z]{16}"])
def test_no_secret_is_written_into_the_code_or_its_configuration(pattern):
    texts = [p for folder in ("media_assets", "deploy") for p in (ROOT / folder).rglob("*")
             if p.is_file() and p.suffix in (".py", ".yaml", ".yml", ".toml", ".json")]
    texts += [ROOT / "dagster.yaml", ROOT / "policy.yaml", ROOT / "workspace.yaml"]
    assert [str(p) for p in texts if re.search(pattern, p.read_text())] == []
