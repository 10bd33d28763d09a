//! Agent runtimes: the runner that drives sessions with unprocessed input, the engines that talk
//! to models, the tools, and the sandboxes they run in. (Built out by the harness issue.)
