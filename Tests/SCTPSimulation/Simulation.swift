import SCTPEngine
