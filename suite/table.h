// One table type and its renderers (aligned terminal text, GitHub markdown, RFC 4180 csv), shared
// by `moebench table`, `runs`, `bench show` and `flops`. Torch-free.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

namespace moebench {

// One column as shown (term, md) and as exported (csv, possibly several fields: a mean and its
// std are two csv fields so that the csv stays machine-readable).
struct Column {
  std::string name;                    // "val loss"
  std::vector<std::string> csv_names;  // {"val_loss_mean", "val_loss_std"}
  bool numeric = false;                // right-aligned in term and md
};

struct Cell {
  std::string text;              // "3.100 ± 0.141"
  std::vector<std::string> csv;  // one per csv field of the column; missing ones export as ""
};

struct Table {
  std::string title;  // a line above the table (term, md); "" = none
  std::vector<Column> columns;
  std::vector<std::vector<Cell>> rows;  // one cell per column
  std::vector<std::string> footnotes;   // shown under the table (term, md)
};

// A column exported as one csv field of the same name.
Column simple_column(const std::string& name, bool numeric = false);
// A cell whose csv field is its text.
Cell text_cell(const std::string& text);
// A row of text cells, for tables built from strings.
std::vector<Cell> text_row(const std::vector<std::string>& texts);

enum class Format { kTerm, kMarkdown, kCsv };
// "term" | "md" | "markdown" | "csv"; anything else throws std::invalid_argument.
Format parse_format(const std::string& text);

// term: the title, aligned columns under a rule of dashes (widths in code points, so "±" and "λ"
// count as one; numeric columns right-aligned, no trailing spaces), then the footnotes. md: the
// title as a paragraph, a GitHub table (| escaped as \|; ---: for numeric columns), a blank line
// and the footnotes as a list. csv: one header line of csv_names and one line per row, fields
// quoted when they hold a comma, a quote, a line break or edge spaces; title and footnotes left
// out (print_table sends them to stderr).
std::string render(const Table& table, Format format);

// Writes render(table, format) to `out`; for csv, the title and footnotes go to `notes`, where a
// reader still sees them without breaking the csv on `out`.
void print_table(const Table& table, Format format, std::FILE* out = stdout,
                 std::FILE* notes = stderr);

// --- number formatting for cells -----------------------------------------------------------------

// printf of one double: format_printf("%.3f", x), format_printf("±%g", margin). The format takes
// exactly one double; the text is cut at 63 bytes.
std::string format_printf(const char* format, double x);

// The shortest %g text that reads back as the same double (1.5, 0.001, 1e-10; "inf", "-inf"), so
// a csv field round-trips exactly. NaN gives "" (an empty csv field).
std::string shortest_exact(double x);

}  // namespace moebench
