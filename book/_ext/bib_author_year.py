"""Bibliography labels in the same author-year form as the citations in the text ("Shamir, 1979").

sphinxcontrib-bibtex's ``author_year`` reference style styles the citations; the bibliography's labels come
from the pybtex formatting style, whose built-in label styles are numbers or alpha codes ("ACG+16").
"""
from collections import Counter

from pybtex.plugin import register_plugin
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle


def _who(entry) -> str:
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [" ".join(n.render_as("text") for n in p.rich_last_names) or str(p) for p in persons]  # {\aa} -> å
    if not names:
        return entry.fields.get("organization") or entry.fields.get("title", "Anon.")
    if len(names) == 1:
        return names[0]
    return f"{names[0]} and {names[1]}" if len(names) == 2 else f"{names[0]} et al."


class AuthorYearLabels(BaseLabelStyle):
    def format_labels(self, sorted_entries):
        entries = list(sorted_entries)
        labels = [f"{_who(e)}, {e.fields.get('year', 'n.d.')}" for e in entries]
        repeats, seen = Counter(labels), Counter()
        for label in labels:  # two papers of one author-year become 2016a, 2016b
            seen[label] += 1
            yield label + ("abcdefghij"[seen[label] - 1] if repeats[label] > 1 else "")


class AuthorYearStyle(PlainStyle):
    default_label_style = "author_year_labels"


def setup(app):
    register_plugin("pybtex.style.labels", "author_year_labels", AuthorYearLabels, force=True)
    register_plugin("pybtex.style.formatting", "author_year_list", AuthorYearStyle, force=True)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
