# A pull request's own PostgreSQL database and role, on the server the
# operator names (admin_url), made and dropped with psql: no provider plugin
# to download. prevue applies this root module in a workspace per preview
# (prevue-<slug>) and hands database_url to the app layer.

variable "admin_url" {
  description = "A PostgreSQL superuser's connection URL: postgres://user:password@host:port/postgres (a secret of prevue's config)."
  type        = string
  sensitive   = true
}

variable "slug" {
  description = "The preview's slug (set by prevue)."
  type        = string
}

variable "pr" {
  description = "The pull request's number (set by prevue)."
  type        = string
}

locals {
  # A PostgreSQL identifier (at most 63 bytes): the slug, shortened, and a hash of it.
  name      = "pv_${substr(replace(var.slug, "-", "_"), 0, 40)}_${substr(sha1(var.slug), 0, 8)}"
  host_port = try(regex("^postgres(?:ql)?://[^@/]*@([^/?]+)", var.admin_url)[0], "no-host-in-admin-url")
  psql      = ["psql", "--no-psqlrc", "--quiet", "-v", "ON_ERROR_STOP=1"]
}

# Made once per workspace and kept: the role's password.
resource "terraform_data" "password" {
  input = uuid()
  lifecycle {
    ignore_changes = [input]
  }
}

resource "terraform_data" "role" {
  input = {
    admin_url = var.admin_url
    name      = local.name
    password  = terraform_data.password.output
  }
  provisioner "local-exec" {
    interpreter = concat(local.psql, ["-d", self.input.admin_url, "-c"])
    command     = "DO $$BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '${self.input.name}') THEN ALTER ROLE ${self.input.name} LOGIN PASSWORD '${self.input.password}'; ELSE CREATE ROLE ${self.input.name} LOGIN PASSWORD '${self.input.password}'; END IF; END$$"
  }
  provisioner "local-exec" {
    when        = destroy
    interpreter = ["psql", "--no-psqlrc", "--quiet", "-v", "ON_ERROR_STOP=1", "-d", self.output.admin_url, "-c"]
    command     = "DROP ROLE IF EXISTS ${self.output.name}"
  }
}

resource "terraform_data" "database" {
  input = {
    admin_url = var.admin_url
    name      = local.name
    app_url   = "postgres://${local.name}:${terraform_data.password.output}@${local.host_port}/${local.name}"
    pr        = var.pr
  }
  depends_on = [terraform_data.role]
  # Only ever created here: one an interrupted apply left half-made is dropped first.
  provisioner "local-exec" {
    interpreter = concat(local.psql, ["-d", self.input.admin_url, "-c", "DROP DATABASE IF EXISTS ${self.input.name} WITH (FORCE)", "-c"])
    command     = "CREATE DATABASE ${self.input.name} OWNER ${self.input.name}"
  }
  provisioner "local-exec" {
    interpreter = concat(local.psql, ["-d", self.input.app_url, "-c"])
    command     = "CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL); INSERT INTO notes (body) VALUES ('Made by Terraform for pull request ${self.input.pr}')"
  }
  provisioner "local-exec" {
    when        = destroy
    interpreter = ["psql", "--no-psqlrc", "--quiet", "-v", "ON_ERROR_STOP=1", "-d", self.output.admin_url, "-c"]
    command     = "DROP DATABASE IF EXISTS ${self.output.name} WITH (FORCE)"
  }
}

output "database_name" {
  value = local.name
}

output "database_url" {
  value     = terraform_data.database.output.app_url
  sensitive = true
}
