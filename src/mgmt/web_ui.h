// The management web page: one self-contained HTML document (styles and script inline,
// nothing fetched from elsewhere) that talks to the management API of the same origin.
#pragma once

#include <string_view>

namespace warren::mgmt {

std::string_view web_ui_page();

}  // namespace warren::mgmt
