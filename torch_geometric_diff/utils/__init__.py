from .results import JSONLResults, read_jsonl, environment_info

__all__ = [
    'JSONLResults',
    'read_jsonl',
    'environment_info',
]
