// Table renderers: aligned terminal text, GitHub markdown and RFC 4180 csv of one Table.
// Spec: suite/table.h (formats), shared/DESIGN.md "Configs and the store" (csv for analysis).
#include "suite/table.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace moebench {
namespace {

// Display width in code points: every non-ASCII character the tables use (±, Δ, λ, †, ×) is one
// column wide, but several bytes long.
size_t display_width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string pad(const std::string& s, size_t width, bool right) {
  const size_t w = display_width(s);
  if (w >= width) return s;
  const std::string fill(width - w, ' ');
  return right ? fill + s : s + fill;
}

// Quoted only when needed, so plain numbers stay plain; edge spaces are quoted because many
// readers strip them from unquoted fields.
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos &&
      (s.empty() || (s.front() != ' ' && s.back() != ' '))) {
    return s;
  }
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string md_cell(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

std::string render_csv(const Table& table) {
  std::string line;
  for (const Column& c : table.columns) {
    for (const auto& name : c.csv_names) line += (line.empty() ? "" : ",") + csv_field(name);
  }
  std::string out = line + "\n";
  for (const auto& row : table.rows) {
    line.clear();
    bool first = true;
    for (size_t i = 0; i < table.columns.size(); ++i) {
      for (size_t k = 0; k < table.columns[i].csv_names.size(); ++k) {
        const std::string field = k < row[i].csv.size() ? row[i].csv[k] : "";
        line += (first ? "" : ",") + csv_field(field);
        first = false;
      }
    }
    out += line + "\n";
  }
  return out;
}

std::string render_markdown(const Table& table) {
  std::string out;
  if (!table.title.empty()) out += table.title + "\n\n";
  std::string header = "|", rule = "|";
  for (const Column& c : table.columns) {
    header += " " + md_cell(c.name) + " |";
    rule += c.numeric ? "---:|" : "---|";
  }
  out += header + "\n" + rule + "\n";
  for (const auto& row : table.rows) {
    std::string line = "|";
    for (const Cell& cell : row) line += " " + md_cell(cell.text) + " |";
    out += line + "\n";
  }
  if (!table.footnotes.empty()) out += "\n";
  for (const auto& f : table.footnotes) out += "- " + f + "\n";
  return out;
}

std::string render_term(const Table& table) {
  const size_t n = table.columns.size();
  std::vector<size_t> width(n, 0);
  for (size_t i = 0; i < n; ++i) width[i] = display_width(table.columns[i].name);
  for (const auto& row : table.rows) {
    for (size_t i = 0; i < n; ++i) width[i] = std::max(width[i], display_width(row[i].text));
  }
  std::string out;
  if (!table.title.empty()) out += table.title + "\n";
  const auto emit = [&](const auto& cell_text) {
    std::string line;
    for (size_t i = 0; i < n; ++i) {
      line += (i ? "  " : "") + pad(cell_text(i), width[i], table.columns[i].numeric);
    }
    // A left-aligned last column would pad every line to the widest cell.
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  };
  emit([&](size_t i) { return table.columns[i].name; });
  emit([&](size_t i) { return std::string(width[i], '-'); });
  for (const auto& row : table.rows) emit([&](size_t i) { return row[i].text; });
  for (const auto& f : table.footnotes) out += f + "\n";
  return out;
}

}  // namespace

Column simple_column(const std::string& name, bool numeric) { return {name, {name}, numeric}; }

Cell text_cell(const std::string& text) { return {text, {text}}; }

std::vector<Cell> text_row(const std::vector<std::string>& texts) {
  std::vector<Cell> row;
  row.reserve(texts.size());
  for (const auto& t : texts) row.push_back(text_cell(t));
  return row;
}

Format parse_format(const std::string& text) {
  if (text == "term") return Format::kTerm;
  if (text == "md" || text == "markdown") return Format::kMarkdown;
  if (text == "csv") return Format::kCsv;
  throw std::invalid_argument("unknown format '" + text + "': use term, md or csv");
}

std::string render(const Table& table, Format format) {
  switch (format) {
    case Format::kCsv:
      return render_csv(table);
    case Format::kMarkdown:
      return render_markdown(table);
    case Format::kTerm:
      break;
  }
  return render_term(table);
}

void print_table(const Table& table, Format format, std::FILE* out, std::FILE* notes) {
  const std::string text = render(table, format);
  std::fwrite(text.data(), 1, text.size(), out);
  if (format != Format::kCsv) return;
  if (!table.title.empty()) std::fprintf(notes, "%s\n", table.title.c_str());
  for (const auto& note : table.footnotes) std::fprintf(notes, "%s\n", note.c_str());
}

std::string format_printf(const char* format, double x) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, x);
  return buf;
}

std::string shortest_exact(double x) {
  if (std::isnan(x)) return "";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  char buf[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, x);
    if (std::strtod(buf, nullptr) == x) break;
  }
  return buf;
}

}  // namespace moebench
