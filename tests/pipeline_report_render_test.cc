// report.html in a real browser: headless Chromium (Debian's `chromium`, installed by
// scripts/install-deps.sh) renders the sample report to a PNG and dumps the DOM it built, in one run of
// about a second. The page must parse into its charts, and the console must stay free of script errors and
// of Content-Security-Policy refusals (the page may load nothing from anywhere).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "pipeline/report_html.h"
#include "test_util.h"

namespace kiln::pipeline_report_render_test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// `chromium` on PATH (Debian's package puts it in /usr/bin); "" when absent.
std::string find_chromium() {
  std::vector<std::string> dirs;
  if (const char* path = std::getenv("PATH")) {
    std::stringstream list(path);
    for (std::string dir; std::getline(list, dir, ':');)
      if (!dir.empty()) dirs.push_back(dir);
  }
  dirs.push_back("/usr/bin");
  for (const auto& dir : dirs) {
    const std::string candidate = dir + "/chromium";
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

size_t count(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + part.size())) ++n;
  return n;
}

uint32_t big_endian_u32(const std::string& bytes, size_t at) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(bytes[at + i]);
  return v;
}

TEST(PipelineReportRender, ChromiumDrawsTheChartsWithoutErrors) {
  const std::string chromium = find_chromium();
  ASSERT_FALSE(chromium.empty()) << "chromium is not installed, and this test needs it to render report.html: run "
                                    "scripts/install-deps.sh (it installs Debian's chromium package)";

  testing::TempDir dir("kiln_report_render");
  const json report = json::parse(testing::read_file(testing::source_path("tests/data/pipeline/report.json")));
  const std::string html_path = dir.file("report.html");
  const std::string png_path = dir.file("report.png");
  testing::write_file(html_path, pipeline::render_report_html(report));

  const auto start = std::chrono::steady_clock::now();
  // --user-data-dir: a fresh profile per run, so that tests running side by side do not share one.
  // --enable-logging=stderr --v=0: console messages go to stderr as "...:CONSOLE:<line>] "<message>"".
  const testing::RunResult run = testing::run_program(
      {chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,2000",
       "--user-data-dir=" + dir.file("profile"), "--no-first-run", "--enable-logging=stderr", "--v=0",
       "--screenshot=" + png_path, "--dump-dom", "file://" + html_path},
      60);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  RecordProperty("chromium_seconds", std::to_string(seconds));
  // No time is asserted (tests never judge speed); the 60 s above only ends a hung browser.
  ASSERT_EQ(run.exit_code, 0) << "chromium failed or timed out after " << seconds << " s:\n" << run.err;

  // The screenshot: a PNG of the window's size with more in it than a blank page.
  ASSERT_TRUE(fs::exists(png_path)) << run.err;
  const std::string png = testing::read_file(png_path);
  ASSERT_GE(png.size(), 24u);
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_EQ(png.substr(12, 4), "IHDR");
  EXPECT_EQ(big_endian_u32(png, 16), 1280u);
  EXPECT_EQ(big_endian_u32(png, 20), 2000u);
  EXPECT_GT(png.size(), 40u * 1024) << "the screenshot looks blank";

  // The DOM the browser built: one latency and one speed-up chart for the sample's one configuration, and
  // the size chart, with their marks.
  const std::string& dom = run.out;
  EXPECT_EQ(count(dom, "<svg"), 3u) << dom.substr(0, 2000);
  EXPECT_EQ(count(dom, "data-chart=\"latency\""), 1u);
  EXPECT_EQ(count(dom, "data-chart=\"speedup\""), 1u);
  EXPECT_EQ(count(dom, "data-chart=\"size\""), 1u);
  EXPECT_GE(count(dom, "<circle"), 100u);  // every timed call
  EXPECT_GE(count(dom, "<rect"), 5u + 5u + 4u);
  EXPECT_NE(dom.find("int8-dynamic: 3.4x faster than the baseline"), std::string::npos);

  // The console: no script error, no resource the page's policy refused.
  std::stringstream err(run.err);
  std::string console;
  for (std::string line; std::getline(err, line);)
    if (line.find(":CONSOLE") != std::string::npos) console += line + "\n";
  EXPECT_EQ(console.find("Uncaught"), std::string::npos) << console;
  EXPECT_EQ(console.find("Error"), std::string::npos) << console;
  // A blocked fetch or script reads "... violates the following Content Security Policy directive ...".
  for (const char* refusal : {"violates", "Content Security Policy", "Refused"})
    EXPECT_EQ(console.find(refusal), std::string::npos) << console;
}

}  // namespace
}  // namespace kiln::pipeline_report_render_test
