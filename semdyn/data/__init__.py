"""semdyn.data"""
