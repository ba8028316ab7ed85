#include "admin/console_handler.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace meterd::admin {
namespace {

namespace fs = std::filesystem;

// The next handler of the chain: answers 299 with the target it saw, so a test can tell that a
// request went past the console.
class EchoHandler final : public http::HttpHandler {
 public:
  void Handle(HttpRequest request, http::Responder respond) override {
    respond([target = request.target] {
      HttpResponse r;
      r.status = 299;
      r.body = target;
      return r;
    });
  }
  HttpResponse Reject(http::RejectReason) override {
    HttpResponse r;
    r.status = 298;
    return r;
  }
};

class ConsoleHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("console-test-" + std::to_string(getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "console" / "assets");
    Write(root_ / "console" / "index.html", "<!doctype html><title>meterd</title>");
    Write(root_ / "console" / "assets" / "console.js", "console.log(1);");
    Write(root_ / "console" / "assets" / "console.css", "body{}");
    Write(root_ / "admin-token", "secret");
    fs::create_symlink(root_ / "admin-token", root_ / "console" / "assets" / "token.txt");
  }
  void TearDown() override { fs::remove_all(root_); }

  static void Write(const fs::path& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
  }

  // The answer of `handler` to a request, through Handle as the server calls it.
  static HttpResponse Call(ConsoleHandler* handler, const std::string& method,
                           const std::string& target) {
    HttpRequest request;
    request.method = method;
    request.target = target;
    HttpResponse answer;
    handler->Handle(request, [&](http::ResponseBuilder build) { answer = build(); });
    return answer;
  }

  static const std::string* Header(const HttpResponse& r, const std::string& name) {
    for (const auto& h : r.headers) {
      if (h.name == name) return &h.value;
    }
    return nullptr;
  }

  fs::path root_;
  EchoHandler next_;
};

TEST_F(ConsoleHandlerTest, ServesTheFilesWithTheirTypesAndTheSecurityPolicy) {
  auto files = ConsoleFiles::Load((root_ / "console").string());
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  EXPECT_EQ(files->size(), 3u);  // the symbolic link is not followed
  ConsoleHandler handler(&*files, &next_, "unused");

  HttpResponse index = Call(&handler, "GET", "/");
  EXPECT_EQ(index.status, 200);
  EXPECT_EQ(index.body, "<!doctype html><title>meterd</title>");
  ASSERT_NE(Header(index, "Content-Type"), nullptr);
  EXPECT_EQ(*Header(index, "Content-Type"), "text/html; charset=utf-8");
  ASSERT_NE(Header(index, "Content-Security-Policy"), nullptr);
  EXPECT_NE(Header(index, "Content-Security-Policy")->find("script-src 'self'"), std::string::npos);
  EXPECT_EQ(Header(index, "Content-Security-Policy")->find("unsafe-inline"), std::string::npos);

  EXPECT_EQ(Call(&handler, "GET", "/index.html?x=1").body, index.body);
  HttpResponse script = Call(&handler, "GET", "/assets/console.js");
  EXPECT_EQ(script.status, 200);
  EXPECT_EQ(script.body, "console.log(1);");
  EXPECT_EQ(*Header(script, "Content-Type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(*Header(Call(&handler, "GET", "/assets/console.css"), "Content-Type"),
            "text/css; charset=utf-8");
}

TEST_F(ConsoleHandlerTest, NothingOutsideTheDirectoryIsServed) {
  auto files = ConsoleFiles::Load((root_ / "console").string());
  ASSERT_TRUE(files.ok());
  ConsoleHandler handler(&*files, &next_, "unused");
  for (const char* target : {"/assets/token.txt", "/assets/../../admin-token",
                             "/assets/%2e%2e/%2e%2e/admin-token", "/assets/", "/assets/nope.js"}) {
    HttpResponse r = Call(&handler, "GET", target);
    EXPECT_EQ(r.status, 404) << target;
    EXPECT_EQ(r.body.find("secret"), std::string::npos) << target;
  }
}

TEST_F(ConsoleHandlerTest, EveryOtherRequestGoesToTheAdminApi) {
  auto files = ConsoleFiles::Load((root_ / "console").string());
  ASSERT_TRUE(files.ok());
  ConsoleHandler handler(&*files, &next_, "unused");
  for (const char* target : {"/v1/status", "/v1/reports/usage?granularity=day", "/metrics"}) {
    HttpResponse r = Call(&handler, "GET", target);
    EXPECT_EQ(r.status, 299) << target;
    EXPECT_EQ(r.body, target);
  }
  EXPECT_EQ(Call(&handler, "POST", "/").status, 299);  // only GET is the console's
  EXPECT_EQ(handler.Reject(http::RejectReason::kMalformed).status, 298);
}

TEST_F(ConsoleHandlerTest, AMissingConsoleAnswersNotFoundWithTheReason) {
  auto missing = ConsoleFiles::Load((root_ / "nowhere").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);

  fs::remove(root_ / "console" / "index.html");
  EXPECT_FALSE(ConsoleFiles::Load((root_ / "console").string()).ok());

  ConsoleFiles none;
  ConsoleHandler handler(&none, &next_, "the console is not built");
  HttpResponse r = Call(&handler, "GET", "/");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("the console is not built"), std::string::npos);
  EXPECT_EQ(Call(&handler, "GET", "/v1/status").status, 299);
}

TEST(ConsoleContentTypeTest, KnownAndUnknownExtensions) {
  EXPECT_EQ(ConsoleContentType("a/b.svg"), "image/svg+xml");
  EXPECT_EQ(ConsoleContentType("console.js.map"), "application/json");
  EXPECT_EQ(ConsoleContentType("README"), "application/octet-stream");
}

}  // namespace
}  // namespace meterd::admin
