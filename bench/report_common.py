"""What proxy_report.py and writes_report.py share: reading results.csv cells and
pooling samples."""
import statistics

CONTENDED_PCT = 15  # other jobs used more than this % of the server or loadgen core


def fnum(v, fmt):
    return "-" if v is None else fmt % v


def num(row, f):
    try:
        return float(row[f])
    except (KeyError, TypeError, ValueError):
        return None


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None
