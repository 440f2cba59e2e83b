"""semdyn.synth"""
