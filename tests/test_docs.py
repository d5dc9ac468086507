"""The documentation holds together: the docs site builds in MkDocs' strict mode (a broken link or anchor fails),
every `--flag` the README and the docs pages mention is one a program or benchmark defines, the README links only to
pages that exist and stays a landing page. (The Python example in docs/api.md runs in test_readme_example.py.)"""

import glob
import os
import re
import subprocess
import sys

import pytest

import tiny

README = os.path.join(tiny.REPO_ROOT, "README.md")
PAGES = sorted(glob.glob(os.path.join(tiny.REPO_ROOT, "docs", "*.md")))
# Flags of other tools the pages quote: absl's own, pip's, mkdocs', saved_model_cli's, textbrewer_compare.sh's.
OTHER_TOOLS = {"flagfile", "verbosity", "helpfull", "no", "strict", "all", "dir", "steps"}
FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9_]*)")


def defined_flags():
  """Flag names defined with absl in tf_distill and bench/ (booleans also as --noNAME), and with argparse in bench/."""
  names = set()
  for path in (glob.glob(os.path.join(tiny.REPO_ROOT, "tf_distill", "**", "*.py"), recursive=True)
               + glob.glob(os.path.join(tiny.REPO_ROOT, "bench", "*.py"))):
    with open(path, encoding="utf-8") as f:
      text = f.read()
    names |= set(re.findall(r'DEFINE_\w+\(\s*"(\w+)"', text))
    names |= {"no" + name for name in re.findall(r'DEFINE_bool\(\s*"(\w+)"', text)}
  for path in glob.glob(os.path.join(tiny.REPO_ROOT, "bench", "*.py")):
    with open(path, encoding="utf-8") as f:
      names |= set(re.findall(r"""add_argument\(\s*["']--(\w+)["']""", f.read()))
  return names


def read(path):
  with open(path, encoding="utf-8") as f:
    return f.read()


def test_docs_build_in_strict_mode(tmp_path):
  done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                        cwd=tiny.REPO_ROOT, capture_output=True, text=True, check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  assert os.path.isfile(tmp_path / "site" / "recipes" / "index.html")


def test_every_mentioned_flag_exists():
  known = defined_flags() | OTHER_TOOLS
  unknown = {}
  for path in [README, *PAGES]:
    for number, line in enumerate(read(path).splitlines(), 1):
      for name in FLAG.findall(line):
        if name not in known:
          unknown.setdefault(f"{os.path.relpath(path, tiny.REPO_ROOT)}:{number}", []).append("--" + name)
  assert not unknown, f"flags no program defines: {unknown}"


def test_flag_check_catches_a_missing_flag():
  assert "augmentation" in defined_flags() and "nofreeze_word_embeddings" in defined_flags()
  assert "no_such_flag" not in defined_flags()


def test_readme_links_to_pages_that_exist():
  links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", read(README))
  assert links
  missing = [link for link in links if not link.startswith("http")
             and not os.path.exists(os.path.join(tiny.REPO_ROOT, link))]
  assert not missing, missing


def test_readme_is_a_landing_page():
  text = read(README)
  assert len(text) <= 10_000, f"README.md has {len(text)} characters; move detail to docs/"
  assert text.count("```bash") >= 2 and "./install.sh && scripts/demo.sh" in text
  assert "./install.sh && python3 -m pytest -q tests/" in text


@pytest.mark.parametrize("page", [os.path.basename(p) for p in PAGES])
def test_every_page_is_in_the_nav(page):
  assert re.search(rf":\s*{re.escape(page)}\s*$", read(os.path.join(tiny.REPO_ROOT, "mkdocs.yml")), re.M), page
