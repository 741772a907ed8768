// The README's client example, compiled with the project so it stays true.
#include <iostream>

#include "agentstore/client.h"

int main(int argc, char** argv) {
  agentstore::ClientOptions options;
  options.key = argc > 1 ? argv[1] : "";  // a service key from <data-dir>/initial-keys
  auto client = agentstore::Client::Connect(options);
  if (!client.ok()) return std::cerr << client.status().ToString() << "\n", 1;
  agentstore::fb::UserT user;
  user.email = "ada@example.com";
  auto created = client->CreateUser(user).get();  // Result<Row<fb::User>>
  if (!created.ok()) return std::cerr << created.status().ToString() << "\n", 1;
  std::cout << agentstore::ToUuid(created.value()->id()).ToString() << "\n";
}
