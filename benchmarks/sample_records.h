// Sample records shared by the benchmark tools, so in-process and network runs work on
// the same shapes: a ~20-field user profile and a ~150-byte chat message.
#pragma once

#include <string>

#include "agentstore/common/row.h"

namespace agentstore::bench {

inline fb::UserT SampleUser(const std::string& email, int i) {
  fb::UserT u;
  u.email = email;
  u.full_name = "User Number " + std::to_string(i);
  u.avatar_url = "https://cdn.example.com/avatars/" + std::to_string(i) + ".png";
  u.job_title = "Engineer";
  u.department = "R&D";
  u.organization = "Example Corp";
  u.preferences = R"({"theme":"dark","language":"en","timezone":"UTC"})";
  return u;
}

inline fb::MessageT SampleMessage(const Uuid& chat, int i) {
  fb::MessageT m;
  m.chat_id = std::make_unique<fb::Uuid>(ToFb(chat));
  m.role = i % 2 ? fb::MessageRole::assistant : fb::MessageRole::user;
  m.parts = R"([{"type":"text","text":"This is message number )" + std::to_string(i) +
            R"( of a typical chat turn, about a hundred and fifty bytes of text content."}])";
  m.model_used = i % 2 ? "gpt-4o-mini" : "";
  m.input_tokens = 120 + i % 50;
  m.output_tokens = i % 2 ? 300 : 0;
  m.cost = 450;
  return m;
}

}  // namespace agentstore::bench
