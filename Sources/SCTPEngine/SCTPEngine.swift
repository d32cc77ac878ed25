// The SCTPEngine module: see README.md.
