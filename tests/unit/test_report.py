from edgetrain.report import plots
from edgetrain.report.benchmarks import update_section
from edgetrain.report.document import Document


def test_document_renders_tables_in_markdown_and_html(tmp_path):
    doc = Document("Demo")
    doc.heading("Plan")
    doc.table([{"policy": "full", "fits": False, "peak_ram_bytes": 300000}])
    md, html = doc.write(tmp_path)
    assert "| full | no | 300,000 |" in md.read_text()
    assert "<td>300,000</td>" in html.read_text()


def test_update_section_replaces_only_its_block(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    update_section("a", "first A", path)
    update_section("b", "first B", path)
    update_section("a", "second A", path)
    text = path.read_text()
    assert "second A" in text and "first B" in text and "first A" not in text


def test_plots_write_png_or_say_why(tmp_path):
    out = plots.line_plot(tmp_path / "acc.png", {"full": ([0, 1], [0.5, 0.9])}, "step", "acc", "t")
    if plots.missing_reason():
        assert out is None
    else:
        assert out.read_bytes()[:4] == b"\x89PNG"
