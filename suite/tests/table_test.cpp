// Tests of the table renderers (term, md, csv) against hand-written output: alignment in code
// points, markdown pipe escapes, RFC 4180 quoting, titles and footnotes. Spec: suite/table.h.
#include "suite/table.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <stdexcept>
#include <string>

namespace moebench {
namespace {

// A title, a text column, a two-field numeric column and a text column, with a multi-byte
// character in a cell ("λ"), a pipe, a comma and quotes, an empty cell and a missing csv field.
Table sample() {
  Table t;
  t.title = "Title";
  t.columns = {simple_column("name"), {"val ± sd", {"mean", "std"}, true}, simple_column("note")};
  t.rows = {{text_cell("a|b"), {"1.0 ± 0.1", {"1", "0.1"}}, text_cell("x, \"y\"")},
            {text_cell("λ"), {"22.5", {"22.5"}}, text_cell("")}};
  t.footnotes = {"† marked"};
  return t;
}

TEST(TableRender, TermAlignsInCodePointsAndTrimsTrailingSpaces) {
  // Widths 4, 9 and 6; "val ± sd" and the numbers right-aligned; the empty last cell leaves no
  // trailing spaces.
  EXPECT_EQ(render(sample(), Format::kTerm),
            "Title\n"
            "name   val ± sd  note\n"
            "----  ---------  ------\n"
            "a|b   1.0 ± 0.1  x, \"y\"\n"
            "λ          22.5\n"
            "† marked\n");
}

TEST(TableRender, MarkdownEscapesPipesAndAlignsNumbersRight) {
  EXPECT_EQ(render(sample(), Format::kMarkdown),
            "Title\n"
            "\n"
            "| name | val ± sd | note |\n"
            "|---|---:|---|\n"
            "| a\\|b | 1.0 ± 0.1 | x, \"y\" |\n"
            "| λ | 22.5 |  |\n"
            "\n"
            "- † marked\n");
}

TEST(TableRender, CsvQuotesOnlyWhatNeedsIt) {
  // One header field per csv name; a field missing from a cell exports as empty; no title, no
  // footnotes.
  EXPECT_EQ(render(sample(), Format::kCsv),
            "name,mean,std,note\n"
            "a|b,1,0.1,\"x, \"\"y\"\"\"\n"
            "λ,22.5,,\n");

  Table t;
  t.columns = {simple_column("a,b"), simple_column("c")};
  t.rows = {text_row({" lead", "two\nlines"}), text_row({"trail ", "cr\r"}),
            text_row({"say \"hi\"", "plain text"})};
  EXPECT_EQ(render(t, Format::kCsv),
            "\"a,b\",c\n"
            "\" lead\",\"two\nlines\"\n"
            "\"trail \",\"cr\r\"\n"
            "\"say \"\"hi\"\"\",plain text\n");
}

TEST(TableRender, NoTitleNoRowsNoFootnotes) {
  Table t;
  t.columns = {simple_column("key"), simple_column("count", true)};
  EXPECT_EQ(render(t, Format::kTerm), "key  count\n---  -----\n");
  EXPECT_EQ(render(t, Format::kMarkdown), "| key | count |\n|---|---:|\n");
  EXPECT_EQ(render(t, Format::kCsv), "key,count\n");
}

// Everything written to a temporary file, read back.
std::string read_back(std::FILE* f) {
  std::rewind(f);
  std::string out;
  for (int c; (c = std::fgetc(f)) != EOF;) out += static_cast<char>(c);
  std::fclose(f);
  return out;
}

TEST(TablePrint, CsvSendsTitleAndFootnotesToTheNotesStream) {
  std::FILE* out = std::tmpfile();
  std::FILE* notes = std::tmpfile();
  ASSERT_NE(out, nullptr);
  ASSERT_NE(notes, nullptr);
  print_table(sample(), Format::kCsv, out, notes);
  EXPECT_EQ(read_back(out), render(sample(), Format::kCsv));
  EXPECT_EQ(read_back(notes), "Title\n† marked\n");

  out = std::tmpfile();
  notes = std::tmpfile();
  ASSERT_NE(out, nullptr);
  ASSERT_NE(notes, nullptr);
  print_table(sample(), Format::kTerm, out, notes);
  EXPECT_EQ(read_back(out), render(sample(), Format::kTerm));
  EXPECT_EQ(read_back(notes), "");
}

TEST(TableFormat, Names) {
  EXPECT_EQ(parse_format("term"), Format::kTerm);
  EXPECT_EQ(parse_format("md"), Format::kMarkdown);
  EXPECT_EQ(parse_format("markdown"), Format::kMarkdown);
  EXPECT_EQ(parse_format("csv"), Format::kCsv);
  try {
    parse_format("html");
    FAIL() << "no error for an unknown format";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "unknown format 'html': use term, md or csv");
  }
}

}  // namespace
}  // namespace moebench
