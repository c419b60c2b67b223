"""A local Realtime endpoint for `make dev` and the browser tests: enough of
Supabase Realtime's WebSocket protocol for the real supabase-js client. See
README.md here for what it speaks; hosted projects use Supabase's own."""
